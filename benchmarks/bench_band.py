"""Benchmark band_bounds: the same as ``bandpo bench`` (options: ``--help``).

.venv/bin/python benchmarks/bench_band.py --out out/bench --n 1048576 --divergences kl,tv
"""

import typer

from bandpo.cli.bench import bench

if __name__ == "__main__":
    typer.run(bench)
