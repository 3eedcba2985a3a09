"""``bandpo check MODULE:FUNCTION``: exit status, tables and JSON from the shell."""

from __future__ import annotations

import json
import textwrap

import pytest
from typer.testing import CliRunner

from bandpo.cli import app

SOLVERS = textwrap.dedent(
    """
    import torch

    def tv_band(old_log_prob, delta):
        inv_p = torch.exp(-old_log_prob)
        q = -torch.expm1(old_log_prob)
        lower = torch.clamp(1 - delta * inv_p, min=0)
        return lower, torch.where(delta >= q, inv_p, 1 + delta * inv_p)

    def capped(old_log_prob, delta):
        lower, upper = tv_band(old_log_prob, delta)
        return lower, torch.clamp(upper, max=5.0)

    def swapped(old_log_prob, delta):
        lower, upper = tv_band(old_log_prob, delta)
        return upper, lower
    """
)


@pytest.fixture
def solver_dir(tmp_path, monkeypatch):
    (tmp_path / "cli_solvers_mod.py").write_text(SOLVERS)
    monkeypatch.chdir(tmp_path)  # the command puts the current directory on sys.path
    return tmp_path


def _run(*args: str):
    return CliRunner().invoke(app, ["check", *args])


def test_clean_solver_exits_zero_and_writes_json(solver_dir):
    out = solver_dir / "report.json"
    res = _run(
        "cli_solvers_mod:tv_band",
        "--divergence",
        "tv",
        "--delta",
        "0.05",
        "--delta",
        "0.5",
        "--speed-n",
        "1024",
        "--json",
        str(out),
    )
    assert res.exit_code == 0, res.output
    assert "PASS" in res.output and "accuracy, float64" in res.output
    data = json.loads(out.read_text())
    assert data["passed"] is True and data["deltas"] == [0.05, 0.5]
    assert data["speed"][0]["n"] == 1024


def test_broken_solver_exits_one_and_names_the_defect(solver_dir):
    res = _run("cli_solvers_mod:swapped", "--divergence", "tv", "--speed-n", "0", "--no-extremes")
    assert res.exit_code == 1
    assert "swapped-bounds" in res.output and "FAIL" in res.output


def test_cap_upper_option_is_the_transform(solver_dir):
    args = ["cli_solvers_mod:capped", "--divergence", "tv", "--speed-n", "0", "--no-extremes"]
    assert _run(*args).exit_code == 1
    res = _run(*args, "--cap-upper", "5")
    assert res.exit_code == 0, res.output
    assert "cap_upper(5)" in res.output


def test_usage_errors_exit_two(solver_dir):
    assert _run("cli_solvers_mod:missing", "--divergence", "tv").exit_code == 2
    assert _run("no_colon_here").exit_code == 2
    assert _run("cli_solvers_mod:tv_band", "--delta", "-1").exit_code == 2
    assert _run("cli_solvers_mod:tv_band", "--kwarg", "oops").exit_code == 2
