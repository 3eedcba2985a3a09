"""``bandpo experiment``: the CPU experiments.

    bandpo experiment entropy --out DIR [--seeds 0-15] [--steps 150] [--vocab-size 1024]
                              [--epochs 8] [--group-size 16] [--lr 0.5] [--delta 0.05]
                              [--methods ppo,clip-higher,...] [--format png]

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
        str | None, typer.Option("--seeds", help="Comma list (0,1,2) or range (0-15). [0-15]")
    ] = None,
    steps: Annotated[
        int | None, typer.Option("--steps", help="Batches (policy-improvement steps). [150]")
    ] = None,
    vocab_size: Annotated[
        int | None, typer.Option("--vocab-size", help="Tokens per prompt. [1024]")
    ] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", help="SGD steps per batch. [8]")] = None,
    group_size: Annotated[
        int | None, typer.Option("--group-size", help="Samples per prompt, G. [16]")
    ] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="SGD learning rate. [0.5]")] = None,
    delta: Annotated[
        float | None, typer.Option("--delta", help="δ of the Band methods. [0.05]")
    ] = None,
    methods: Annotated[
        str | None,
        typer.Option(
            "--methods",
            help="Comma list of ppo, clip-higher, dcpo, band-<divergence>. "
            "[ppo,clip-higher,dcpo,band-kl,band-tv,band-chi2]",
        ),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="Comma-separated: png,pdf,svg.")] = "png",
) -> None:
    """Entropy collapse on a softmax bandit: PPO clip, Clip-Higher, DCPO and Band, over seeds.

    Unset options take the defaults of bandpo.experiments.entropy.EntropyConfig (in brackets).
    """
    import math

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
    given = {
        "seeds": None if seeds is None else _parse_seeds(seeds),
        "steps": steps,
        "vocab_size": vocab_size,
        "epochs": epochs,
        "group_size": group_size,
        "lr": lr,
        "delta": delta,
        "methods": None
        if methods is None
        else tuple(m.strip() for m in methods.split(",") if m.strip()),
    }
    try:
        config = EntropyConfig(**{k: v for k, v in given.items() if v is not None})
        meths = [make_method(name, config.delta) for name in config.methods]
    except ValueError as err:
        raise typer.BadParameter(str(err)) from err

    # Tables are wide: keep a readable width when the output is not a terminal (logs, CI).
    console = Console() if Console().is_terminal else Console(width=150)
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
    rows = result.summary()
    ref = rows[0].reference
    table = Table(
        title=f"Entropy collapse on the softmax bandit: values after {config.steps} steps",
        caption=(
            f"mean ± std over {n} seeds; [±95% t-interval of the mean]. 'Δ entropy vs {ref}': "
            "paired same-seed difference (common initial policy and random numbers). "
            "Initial entropy "
            f"{result.initial_entropy:.3f} nats. 'H | correct' is the entropy among the "
            f"{config.n_rewarded} correct tokens (ln {config.n_rewarded} = "
            f"{math.log(config.n_rewarded):.3f} if spread evenly, 0 if collapsed onto one). "
            f"'tail mass': correct tokens with p0 < {config.tail_threshold:g}. 'H at R=0.9': "
            "entropy when the expected reward first reaches 0.9. 'clip': fraction of sampled "
            "tokens whose clip bound, averaged over the run."
        ),
    )
    columns = (
        "method",
        "entropy (nats)",
        f"Δ entropy vs {ref}",
        "reward",
        "H | correct",
        "tail mass",
        "H at R=0.9",
    )
    for col in (*columns, "clip"):
        table.add_column(col, justify="left" if col == "method" else "right", no_wrap=True)
    for s in rows:
        table.add_row(
            s.method,
            f"{s.entropy_mean:.3f} ± {s.entropy_std:.3f} [±{s.entropy_ci95:.3f}]",
            f"{s.entropy_vs_reference_mean:+.3f} [±{s.entropy_vs_reference_ci95:.3f}]",
            f"{s.reward_mean:.4f} ± {s.reward_std:.4f}",
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
