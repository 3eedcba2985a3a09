"""The benchmark logic and ``bandpo bench`` on a tiny tensor (speed is not asserted)."""

from __future__ import annotations

import json

import torch
from typer.testing import CliRunner

from bandpo.divergences import get_divergence
from bandpo.solvers.bench import render_table, run_bench, write_json
from bandpo.tolerances import tolerance_for


def test_run_bench_rows_and_json(tmp_path):
    rows = run_bench(
        n=2048,
        divergences=[get_divergence("kl"), get_divergence("chi2")],
        dtypes=(torch.float64,),
        devices=["cpu"],
        repeats=1,
    )
    assert [r.divergence for r in rows] == ["kl", "chi2"]
    for r in rows:
        assert r.time_s > 0 and r.paper_time_s > 0 and r.exp_time_s > 0
        assert r.speedup_vs_paper == r.paper_time_s / r.time_s
        assert r.worst_rel_error <= tolerance_for(torch.float64).rel
    assert "closed form" in rows[1].method and "root finder" in rows[0].method
    path = write_json(rows, tmp_path)
    data = json.loads(path.read_text())
    assert {
        "divergence",
        "dtype",
        "device",
        "n",
        "time_s",
        "elements_per_s",
        "speedup_vs_paper",
        "time_vs_exp",
        "worst_rel_error",
    } <= set(data["rows"][0])
    assert render_table(rows).row_count == 2


def test_cli_bench(tmp_path):
    from bandpo.cli import app

    result = CliRunner().invoke(
        app,
        [
            "bench",
            "--out",
            str(tmp_path),
            "--n",
            "1024",
            "--divergences",
            "tv,alpha=2",
            "--dtypes",
            "float32",
            "--device",
            "cpu",
            "--repeats",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "bench_band.json").read_text())["rows"]
    assert [r["divergence"] for r in rows] == ["tv", "alpha(alpha=2)"]
    assert all(r["worst_ulp"] <= tolerance_for(torch.float32).ulp for r in rows)
