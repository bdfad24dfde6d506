"""Benchmark geoembed:load with CLUSTER=local: one region of four AEF tiles (2 x 2) loaded on 1 and 2 local Dask worker
processes, beside the same load in one process (CLUSTER empty).

Printed, each beside its baseline from the same run:
  cluster-1/2   the load on 1 / 2 workers (pieces written by the workers, then merged into OUTPUT by the client),
                with the time of the tasks and of the merge apart; ratio to the in-process load
  speed-up      2 workers over 1 worker (the issue's target for block-wise algorithms: >= 1.6x on 2 cores)
  memory        peak resident memory of each worker (< 1.5 GB)
and whether the outputs are identical, bit for bit. Each run is a fresh process (GDAL_CACHEMAX=256 MB in it and its
workers); cluster runs time the work on an already started cluster (start-up printed apart). The tiles are those of
bench/bench_analysis.py under build/bench/analysis-SIZE/ (made there when missing).

    .venv/bin/python bench/bench_cluster_load.py [--size 2048 | 4096] [--repeat N] [--output-type float32 | int16]
"""

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import tests  # noqa: E402, F401 - puts the plugin (the repository root) on sys.path as `geoembed`
from bench import bench_cluster as cluster_bench  # noqa: E402
from bench.bench_analysis import make_tile, tile_paths  # noqa: E402
from bench.bench_cluster import Quiet, pixels  # noqa: E402

WORK = ROOT / "build" / "bench"


def in_process(folder, out, output_type):
    """geoembed:load as it runs in QGIS (CLUSTER empty)."""
    from geoembed.loaders.load import LoadRequest, run

    started = time.perf_counter()
    run(LoadRequest(output=out, product="aef", source=str(folder), output_type=output_type), Quiet())
    return {"seconds": time.perf_counter() - started}


def on_cluster(folder, out, output_type, workers):
    """The same on CLUSTER=local with `workers` processes: start-up, then the load (tasks, then merge) timed apart."""
    from geoembed.analysis.distributed import load_job
    from geoembed.loaders.load import LoadRequest

    def run(session, progress):
        request = LoadRequest(output=out, product="aef", source=str(folder), output_type=output_type)
        return load_job.run(None, request, Quiet(), progress, session=session).grid

    return cluster_bench.timed_on_cluster(workers, run)


def measure(kind, *args, repeat=1):
    return cluster_bench.measure(kind, *args, repeat=repeat, module="bench.bench_cluster_load")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048, help="tile side in pixels (default 2048)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each timing (the fastest is kept; default 1)")
    parser.add_argument("--output-type", default="float32", choices=("float32", "int16"))
    args = parser.parse_args()
    tiles = tile_paths(args.size)
    for seed, path in enumerate(tiles):
        if not path.exists():
            make_tile(path, args.size, seed)
    folder = tiles[0].parent
    out = WORK / "out"
    out.mkdir(parents=True, exist_ok=True)
    print(f"region: 4 tiles of {args.size}^2 x 64 ({2 * args.size} x {2 * args.size} pixels), {os.cpu_count()} cores")
    print(f"OUTPUT_TYPE={args.output_type}; load average at the start {os.getloadavg()[0]:.2f}")
    names = {key: out / f"cluster-load-{key}.tif" for key in ("base", "1", "2")}
    try:
        base = measure("in_process", folder, names["base"], args.output_type, repeat=args.repeat)
        one = measure("on_cluster", folder, names["1"], args.output_type, 1, repeat=args.repeat)
        two = measure("on_cluster", folder, names["2"], args.output_type, 2, repeat=args.repeat)

        cluster_bench.report(base, one, two, "geoembed:load", args.repeat)
        same = all(pixels(names[key]) == pixels(names["base"]) for key in ("1", "2"))
        print(f"cluster outputs identical to the in-process one, bit for bit: {same}")
    finally:
        for path in names.values():
            if path.exists():
                path.unlink()
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
