"""The bounds / figures / verify commands, run in-process with Typer's CliRunner."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

import mpmath
import pytest
from typer.testing import CliRunner

from bandpo import oracle_band
from bandpo import verification as V
from bandpo.cli import app
from bandpo.divergences import divergence_names
from bandpo.verification import CheckResult

runner = CliRunner()


def _flat(text: str) -> str:
    """Output with rich's error-panel borders and line wrapping removed."""
    return " ".join(text.replace("│", " ").split())


def _run(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False, terminal_width=200)


def test_bounds_prints_oracle_to_twelve_digits():
    res = _run("bounds", "--p", "0.08", "--delta", "0.05", "--divergence", "kl")
    assert res.exit_code == 0, res.output
    ref = oracle_band("0.08", 0.05, "kl")
    for x in (ref.lower, ref.upper, mpmath.mpf("0.08") * (ref.upper - 1)):
        assert mpmath.nstr(x, 12, min_fixed=-4, max_fixed=6) in res.output


def test_bounds_all_divergences_and_saturation_flag():
    res = _run("bounds", "--p", "0.08", "--delta", "0.05")
    assert res.exit_code == 0, res.output
    for name in divergence_names():
        assert name in res.output
    # js saturates its lower end at p = 0.08, delta = 0.05 (oracle says so)
    from bandpo.solvers.oracle import oracle_band_detail

    assert oracle_band_detail("0.08", 0.05, "js").lower_saturated
    assert "r-=0" in res.output


def test_bounds_log_p_and_alpha():
    res = _run("bounds", "--log-p", "0", "--delta", "0.05", "-d", "alpha", "--alpha", "2")
    assert res.exit_code == 0, res.output
    assert "alpha(alpha=2)" in res.output and "r+=1/p" in res.output


@pytest.mark.parametrize(
    "args, hint",
    [
        (("--p", "1.5"), "(0, 1]"),
        (("--p", "0"), "(0, 1]"),
        (("--p", "0.1", "--delta", "-1"), "delta"),
        (("--p", "0.1", "-d", "nope"), "valid names"),
        (("--p", "0.1", "-d", "alpha", "--alpha", "1"), "alpha"),
        (("--p", "0.1", "--log-p", "-1"), "exactly one"),
    ],
)
def test_bounds_bad_input(args, hint):
    res = runner.invoke(app, ["bounds", *args], terminal_width=200)
    assert res.exit_code != 0
    assert hint in _flat(res.output)


def test_figures_writes_every_format(tmp_path):
    res = _run(
        "figures",
        "--out",
        str(tmp_path),
        "--delta",
        "0.05",
        "--divergences",
        "kl,tv,alpha:2",
        "--format",
        "png,svg",
    )
    assert res.exit_code == 0, res.output
    stems = (
        "band_width",
        "ratio_bounds",
        "probability_variation",
        "clipping_regions",
        "solver_ulps",
    )
    for stem in stems:
        for ext in ("png", "svg"):
            f = tmp_path / f"{stem}.{ext}"
            assert f.is_file() and f.stat().st_size > 1000, f
    assert not list(tmp_path.glob("*.pdf"))


def test_figures_rejects_bad_format(tmp_path):
    res = runner.invoke(app, ["figures", "--out", str(tmp_path), "--format", "gif"])
    assert res.exit_code != 0 and "png" in _flat(res.output)


def test_verify_exit_status_follows_the_checks(tmp_path, monkeypatch):
    outcome = {"ok": True}

    def check():
        return CheckResult("torch", "probe", outcome["ok"], "probe", 0.0)

    monkeypatch.setattr(
        V, "plan_checks", lambda config, divergences=None: ([V._Task("torch", "probe", check)], {})
    )
    res = _run("verify", "--out", str(tmp_path / "ok"), "--no-figures", "--no-progress")
    assert res.exit_code == 0, res.output
    assert "PASSED" in res.output
    outcome["ok"] = False
    res = _run("verify", "--out", str(tmp_path / "bad"), "--no-figures", "--no-progress")
    assert res.exit_code == 1
    assert "FAIL" in res.output
    assert json.loads((tmp_path / "bad" / "report.json").read_text())["passed"] is False


def test_verify_rejects_unknown_divergence(tmp_path):
    res = runner.invoke(app, ["verify", "--out", str(tmp_path), "-d", "nope"])
    assert res.exit_code != 0 and "valid" in _flat(res.output)
