"""``bandpo experiment``: the CPU experiments.

    bandpo experiment entropy --out DIR [--seeds 0-7] [--steps 150] [--vocab-size 1024]
                              [--epochs 8] [--methods ppo,clip-higher,...] [--format png]

``entropy`` runs the softmax-bandit entropy-collapse comparison
(:mod:`bandpo.experiments.entropy`) and writes ``entropy.<format>`` (the figure) and
``entropy.json`` (configuration, summary table and curves) into ``--out``, and prints the table
of final entropy and reward per method (mean ± std over seeds, with the 95 % interval).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["entropy", "experiment_app", "register"]

experiment_app = typer.Typer(
    name="experiment",
    help="CPU experiments (entropy collapse on a softmax bandit).",
    no_args_is_help=True,
    add_completion=False,
)


def _parse_seeds(text: str) -> tuple[int, ...]:
    try:
        if "-" in text and "," not in text:  # "0-7"
            lo, hi = (int(x) for x in text.split("-"))
            seeds = tuple(range(lo, hi + 1))
        else:
            seeds = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError as err:
        raise typer.BadParameter(
            f"seeds must be like 0,1,2 or 0-7; got {text!r}", param_hint="--seeds"
        ) from err
    if not seeds:
        raise typer.BadParameter("at least one seed is needed", param_hint="--seeds")
    return seeds


@experiment_app.command("entropy")
def entropy(
    out: Annotated[Path, typer.Option("--out", help="Output directory.")] = Path("out/experiment"),
    seeds: Annotated[
        str, typer.Option("--seeds", help="Comma list (0,1,2) or range (0-7).")
    ] = "0-7",
    steps: Annotated[
        int, typer.Option("--steps", help="Batches (policy-improvement steps).")
    ] = 200,
    vocab_size: Annotated[int, typer.Option("--vocab-size", help="Tokens per prompt.")] = 1024,
    epochs: Annotated[int, typer.Option("--epochs", help="SGD steps per batch.")] = 8,
    group_size: Annotated[int, typer.Option("--group-size", help="Samples per prompt (G).")] = 16,
    delta: Annotated[float, typer.Option("--delta", help="δ of the Band methods.")] = 0.05,
    methods: Annotated[
        str,
        typer.Option("--methods", help="Comma list: ppo, clip-higher, dcpo, band-<divergence>."),
    ] = "ppo,clip-higher,dcpo,band-kl,band-tv,band-chi2",
    fmt: Annotated[str, typer.Option("--format", help="Comma-separated: png,pdf,svg.")] = "png",
) -> None:
    """Entropy collapse on a softmax bandit: PPO clip, Clip-Higher, DCPO and Band, over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.table import Table

    from bandpo.experiments.entropy import (
        EntropyConfig,
        make_method,
        plot_entropy_experiment,
        run_entropy_experiment,
    )
    from bandpo.visualize.style import parse_formats, save_figure

    try:
        formats = parse_formats(fmt)
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--format") from err
    names = tuple(m.strip() for m in methods.split(",") if m.strip())
    try:
        meths = [make_method(name, delta) for name in names]
        config = EntropyConfig(
            vocab_size=vocab_size,
            steps=steps,
            epochs=epochs,
            group_size=group_size,
            delta=delta,
            seeds=_parse_seeds(seeds),
            methods=names,
        )
    except ValueError as err:
        raise typer.BadParameter(str(err)) from err

    console = Console()
    with Progress(
        TextColumn("[bold]entropy experiment[/]"),
        BarColumn(),
        TextColumn("step {task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("run", total=config.steps)
        result = run_entropy_experiment(
            config, methods=meths, progress=lambda step, _: progress.update(task, completed=step)
        )

    out.mkdir(parents=True, exist_ok=True)
    fig = plot_entropy_experiment(result)
    paths = save_figure(fig, out, "entropy", formats)
    plt.close(fig)
    json_path = out / "entropy.json"
    result.to_json(json_path)

    n = len(config.seeds)
    table = Table(
        title=(
            f"Final entropy and expected reward after {config.steps} steps "
            f"(mean ± std over {n} seeds; ±95% CI of the mean in brackets). "
            f"Initial entropy {result.initial_entropy:.3f} nats; ln({config.n_rewarded}) = "
            f"{__import__('math').log(config.n_rewarded):.3f} is the entropy of a uniform "
            "policy over the correct tokens."
        )
    )
    columns = (
        "method",
        "entropy (nats)",
        "reward",
        "entropy | correct",
        "tail mass",
        "entropy at reward 0.9",
        "clip frac.",
    )
    for col in columns:
        table.add_column(col, justify="left" if col == "method" else "right")
    for s in result.summary():
        table.add_row(
            s.method,
            f"{s.entropy_mean:.3f} ± {s.entropy_std:.3f} [±{s.entropy_ci95:.3f}]",
            f"{s.reward_mean:.4f} ± {s.reward_std:.4f} [±{s.reward_ci95:.4f}]",
            f"{s.correct_entropy_mean:.3f} ± {s.correct_entropy_std:.3f}",
            f"{s.tail_mass_mean:.4f} ± {s.tail_mass_std:.4f}",
            f"{s.entropy_at_reward_mean:.3f} ± {s.entropy_at_reward_std:.3f}",
            f"{s.clip_frac_mean:.4f}",
        )
    console.print(table)
    console.print(f"wall time {result.seconds:.1f} s")
    for path in [*paths, json_path]:
        console.print(f"wrote {path}")


def register(app: typer.Typer) -> None:
    """Add the ``experiment`` command group to the ``bandpo`` app."""
    app.add_typer(experiment_app, name="experiment")
