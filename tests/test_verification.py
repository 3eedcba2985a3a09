"""The verify runner: report rendering, failure handling, and one real end-to-end slice."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

import pytest

from bandpo import get_divergence
from bandpo import verification as V
from bandpo.verification import CheckResult, VerifyConfig, VerifyReport, run_verification


def _report(results, figures=()):
    return VerifyReport(
        results=list(results),
        figures=list(figures),
        seconds=1.5,
        config=VerifyConfig(),
        environment={"python": "3.x"},
    )


def test_report_verdict_markdown_and_json():
    ok = CheckResult("theory", "kl", True, "12 proved", 0.2, {"x": float("inf")})
    bad = CheckResult("torch", "kl float32", False, "worst 9 ulp | bar 8", 0.1)
    rep = _report([ok, bad], ["figures/band_width.png", "figures/band_width.pdf"])
    assert not rep.passed and rep.n_failed == 1
    md = rep.to_markdown()
    assert "FAILED (1 checks)" in md
    assert "| kl float32 | **FAIL** |" in md
    assert "worst 9 ulp \\| bar 8" in md  # pipes escaped inside the table
    assert "![band width](figures/band_width.png)" in md
    assert "band_width.pdf" not in md  # only PNGs are embedded
    assert [r[0] for r in rep.section_rows()] == ["theory", "torch"]
    d = json.loads(json.dumps(rep.to_dict()))
    assert d["passed"] is False and d["n_failed"] == 1
    assert d["results"][0]["details"]["x"] == "inf"
    assert _report([ok]).passed


def test_report_rich_table_has_every_check():
    from rich.console import Console

    rep = _report([CheckResult("convex", f"d{i}", i != 1, "s", 0.0) for i in range(3)])
    con = Console(record=True, width=120)
    con.print(rep.rich_table())
    text = con.export_text()
    assert text.count("pass") == 2 and "FAIL" in text


def test_crashing_check_is_recorded_and_run_continues(tmp_path, monkeypatch):
    def boom():
        raise RuntimeError("solver exploded")

    def fine():
        return CheckResult("torch", "fine", True, "ok", 0.0)

    tasks = [V._Task("theory", "boom", boom), V._Task("torch", "fine", fine)]
    monkeypatch.setattr(V, "plan_checks", lambda config, divergences=None: (tasks, {}))
    rep = run_verification(tmp_path, VerifyConfig(figures=False), progress=False)
    assert [r.passed for r in rep.results] == [False, True]
    assert "RuntimeError: solver exploded" in rep.results[0].summary
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["passed"] is False
    assert "solver exploded" in saved["results"][0]["details"]["traceback"]
    assert (tmp_path / "report.md").read_text().startswith("# bandpo verification report")


def test_plan_covers_every_layer_and_full_adds_vocabulary_scale():
    divs = [get_divergence("kl"), get_divergence("tv")]
    tasks, store = V.plan_checks(VerifyConfig(), divs)
    sections = [t.section for t in tasks]
    assert sections.count("theory") == 2
    assert sections.count("torch") == 4  # two dtypes
    assert sections.count("convex") == 2
    full, _ = V.plan_checks(VerifyConfig(full=True), divs)
    names = [t.name for t in full if t.section == "convex"]
    assert "kl N=32768" in names and "kl N=151936" in names and "tv N=151936" in names
    assert set(store) == {"ulps", "convex_points"}


def _layers_present() -> str | None:
    import importlib

    for mod, attr in (
        ("bandpo.theory", "derive"),
        ("bandpo.solvers.convex", "verify_reduction"),
        ("bandpo.solvers.convex_reduction", "verify_reduction"),
        ("bandpo.testing", "check_solver"),
        ("bandpo.solvers.baselines", "dcpo"),
    ):
        try:
            getattr(importlib.import_module(mod), attr)
        except (ImportError, AttributeError):
            return f"{mod}.{attr} not available in this checkout"
    return None


@pytest.mark.skipif(_layers_present() is not None, reason=str(_layers_present()))
def test_end_to_end_slice_passes(tmp_path):
    """One real slice of the matrix (tv: closed form, saturating ends) through every layer."""
    rep = run_verification(
        tmp_path,
        VerifyConfig(vocab_size=50, n_cases=1, figures=True),
        divergences=[get_divergence("tv")],
        progress=False,
    )
    failed = [(r.section, r.name, r.summary) for r in rep.results if not r.passed]
    assert not failed, failed
    assert {r.section for r in rep.results} == {"theory", "torch", "convex", "figures"}
    assert (tmp_path / "figures" / "band_width.png").is_file()
    assert (tmp_path / "figures" / "solver_ulps.png").is_file()
    assert "![solver ulps](figures/solver_ulps.png)" in (tmp_path / "report.md").read_text()
