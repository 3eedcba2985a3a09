"""Golden tables: complete, documented, and reproducible by the script that wrote them."""

from __future__ import annotations

import numpy as np
import pytest

from bandpo.golden import (
    GOLDEN_DELTAS,
    golden_divergences,
    golden_log_p_grid,
    load_golden,
)

ALL = golden_divergences()
IDS = [d.key for d in ALL]


def _make_golden_module():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "scripts" / "make_golden.py"
    spec = importlib.util.spec_from_file_location("make_golden", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("div", ALL, ids=IDS)
def test_table_covers_the_grid_and_records_its_origin(div):
    t = load_golden(div)
    grid = golden_log_p_grid()
    assert len(t) == len(grid) * len(GOLDEN_DELTAS)
    assert np.array_equal(np.unique(t.log_p), grid)
    assert np.array_equal(t.log_p.astype(np.float32).astype(np.float64), t.log_p)  # f32-exact
    assert t.header["command"].startswith("python scripts/make_golden.py")
    assert "mpmath" in t.header["versions"] and "dps=50" in t.header["precision"]
    p = np.exp(t.log_p)
    assert p.min() < 1.01e-12 and (1 - p[p < 1]).min() < 1.01e-9 and (t.log_p == 0).any()


@pytest.mark.parametrize("div", ALL, ids=IDS)
def test_a_sample_regenerates_identically(div):
    make_golden = _make_golden_module()
    t = load_golden(div)
    lines = [
        line
        for line in (
            __import__("importlib.resources").resources.files("bandpo")
            / "data"
            / "golden"
            / f"{div.key}.tsv"
        )
        .read_text()
        .splitlines()
        if line and not line.startswith(("#", "log_p"))
    ]
    rng = np.random.default_rng(20261126)
    rows = rng.choice(len(t), size=6, replace=False)
    for i in rows:
        assert make_golden.golden_row(div, t.log_p[i], t.delta[i], dps=50) == lines[i]


def test_unknown_alpha_has_no_table():
    with pytest.raises(ValueError, match="no golden table"):
        load_golden("alpha", alpha=7)
