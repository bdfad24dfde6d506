"""Benchmark CLUSTER=local: geoembed:similarity over one region of four AEF tiles (2 x 2) on 1 and 2 local Dask worker
processes, beside the same run in one process (no cluster).

Printed, each beside its baseline from the same run, with the issue's target:
  cluster-2   2 workers, one core each            speed-up over 1 worker on 1 core >= 1.6x (on 2 cores)
  memory      peak resident memory of each worker  < 1.5 GB (1536 MiB)
and the estimate for a 100-tile region of full-size tiles (8192 x 8192 x 64) on N workers: time, bytes read, tasks,
derived from the measured figures. Each run is a fresh process (GDAL_CACHEMAX=256 MB in it and in its workers); the
cluster runs time the work on an already started cluster (its start-up is printed apart). Inputs are the tiles of
bench/bench_analysis.py under build/bench/analysis-SIZE/, made there when missing.

    .venv/bin/python bench/bench_cluster.py [--size 2048 | 4096 | 8192] [--repeat N] [--workers 1,2]
"""

import argparse
import importlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import tests  # noqa: E402, F401 - puts the plugin (the repository root) on sys.path as `geoembed`
from bench.bench_analysis import make_tile, tile_paths  # noqa: E402
from bench.bench_load import peak_rss_kib  # noqa: E402

WORK = ROOT / "build" / "bench"
MEMORY_LIMIT_MIB = 1536
SPEEDUP_TARGET = 1.6
FULL_TILE = 8192
REGION_TILES = 100


class Quiet:
    def info(self, message):
        pass

    warning = debug = info

    def progress(self, fraction):
        pass

    def is_cancelled(self):
        return False


# --- measured code paths (each runs in a child process) ----------------------------------------------------


def region_and_query(folder):
    from geoembed.analysis.regions import feature_vectors
    from geoembed.analysis.similarity import query_vector
    from geoembed.loaders.open import open_embeddings

    raster = open_embeddings(str(folder), Quiet())
    g = raster.grid
    points = [
        ("point", (g.x0 + (i * 997 % g.width + 0.5) * g.res_x, g.y0 - (i * 1511 % g.height + 0.5) * g.res_y)) for i in range(1, 6)
    ]
    return raster, query_vector([v for v in feature_vectors(raster, points) if v is not None])


def in_process(folder, out):
    """geoembed:similarity as it runs in QGIS (CLUSTER empty): K=10, heatmap written like the provider does."""
    from geoembed.analysis.similarity import SimilarityRaster
    from geoembed.loaders.raster.writer import OutputSpec, write_rasters

    raster, query = region_and_query(folder)
    heatmap = SimilarityRaster(raster, query, None, 10)
    try:
        started = time.perf_counter()
        spec = OutputSpec(out, ("similarity",))
        write_rasters(raster.grid, [spec], lambda window: [heatmap.read(window)], order=heatmap.order)
        return {"seconds": time.perf_counter() - started}
    finally:
        heatmap.close()


def timed_on_cluster(workers, run):
    """Figures of run(session, progress) -> output grid on a local cluster of `workers` processes: start-up, then the
    run with its tasks and its merge in the client timed apart (the merge is the last MERGE_SHARE of the progress)."""
    from geoembed.analysis.distributed import cluster, runner
    from geoembed.analysis.distributed.pieces import layout_for

    started = time.perf_counter()
    with cluster.connect(cluster.ClusterSettings(cluster.LOCAL, int(workers))) as session:
        startup = time.perf_counter() - started
        marks = {}

        def progress(fraction):
            if fraction >= 1 - runner.MERGE_SHARE and "tasks" not in marks:
                marks["tasks"] = time.perf_counter()

        started = time.perf_counter()
        grid = run(session, progress)
        seconds = time.perf_counter() - started
        peaks = session.worker_peak_rss()
        tasks = len(layout_for(grid, session.worker_count()).pieces)
    return {
        "seconds": seconds,
        "tasks_seconds": marks["tasks"] - started,
        "merge_seconds": seconds - (marks["tasks"] - started),
        "startup": startup,
        "worker_peak_mib": max(peaks.values()) / 2**20,
        "tasks": tasks,
    }


def on_cluster(folder, out, workers):
    """The same on CLUSTER=local with `workers` processes: start-up, then the run (tasks, then merge) timed apart."""
    from geoembed.analysis.distributed import jobs
    from geoembed.loaders.raster.writer import OutputSpec

    raster, query = region_and_query(folder)
    grid = raster.grid
    raster.close()

    def run(session, progress):
        log = Quiet()
        log.progress = progress
        spec = OutputSpec(out, ("similarity",))
        jobs.similarity(None, str(folder), False, grid, query, None, 10, spec, log, session=session)
        return grid

    return timed_on_cluster(workers, run)


# --- harness ---------------------------------------------------------------------------------------


def child(module, kind, *args):
    figures = getattr(importlib.import_module(module), kind)(*args)
    figures["peak_mib"] = peak_rss_kib() / 1024
    print(json.dumps(figures))


def measure(kind, *args, repeat=1, module="bench.bench_cluster", cores=None):
    """The figures of the fastest of `repeat` fresh-process runs of module's function `kind` (and the highest peaks of
    all); with `cores`, the process (its workers too) runs on that many of this machine's cores only."""
    code = f"import sys; sys.path.insert(0, {str(ROOT)!r}); import bench.bench_cluster as b; b.child(*sys.argv[1:])"
    argv = [sys.executable, "-c", code, module, kind] + [str(a) for a in args]
    runs = []
    for _ in range(repeat):
        result = subprocess.run(
            argv, capture_output=True, text=True, env={**os.environ, "GDAL_CACHEMAX": "256"}, preexec_fn=on_cores(cores)
        )
        if result.returncode:
            print(result.stderr[-6000:], file=sys.stderr)
        result.check_returncode()
        runs.append(json.loads(result.stdout.strip().splitlines()[-1]))
    best = min(runs, key=lambda figures: figures["seconds"])
    for key in ("peak_mib", "worker_peak_mib"):
        if key in best:
            best[key] = max(figures[key] for figures in runs)
    best["spread"] = max(f["seconds"] for f in runs) - best["seconds"]
    return best


def on_cores(cores):
    """A preexec_fn that keeps a child process (and the processes it starts) on the first `cores` usable cores."""
    if cores is None:
        return None
    from geoembed.analysis.distributed.cluster import usable_cores

    chosen = usable_cores()[:cores]
    return lambda: os.sched_setaffinity(0, chosen)


def pixels(path):
    from osgeo import gdal

    return gdal.Open(str(path)).ReadRaster()


def verdict(ok):
    return "PASS" if ok else "FAIL"


def report(base, one, two, what, repeat):
    """The lines of an in-process run (base) beside 1 and 2 workers: times, speed-up (with its verdict), memory."""

    def row(name, figures, text):
        spread = f" (spread {figures['spread']:.1f} s)" if repeat > 1 else ""
        return f"{name:<11} {figures['seconds']:8.1f} s{spread}  peak {figures['peak_mib']:5.0f} MiB | {text}"

    print(row("in-process", base, f"{what} in one process (CLUSTER empty)"))
    for name, figures in (("cluster-1", one), ("cluster-2", two)):
        print(
            row(
                name,
                figures,
                f"{figures['tasks']} tasks {figures['tasks_seconds']:.1f} s + merge {figures['merge_seconds']:.1f} s",
            )
            + f"; start-up {figures['startup']:.1f} s; ratio to in-process {figures['seconds'] / base['seconds']:.2f}x"
        )
    speedup = one["seconds"] / two["seconds"]
    print(
        f"{'speed-up':<11} {two['seconds']:8.1f} s  2 workers | cluster-1 {one['seconds']:8.1f} s | "
        f"{speedup:5.2f}x  target >= {SPEEDUP_TARGET}x  {verdict(speedup >= SPEEDUP_TARGET)}"
    )
    task_speedup = one["tasks_seconds"] / two["tasks_seconds"]
    print(
        f"{'tasks only':<11} {two['tasks_seconds']:8.1f} s  2 workers | cluster-1 {one['tasks_seconds']:8.1f} s | "
        f"{task_speedup:5.2f}x  (without the merge in the client)"
    )
    worker_peak = max(one["worker_peak_mib"], two["worker_peak_mib"])
    ok = worker_peak < MEMORY_LIMIT_MIB
    print(f"memory {'worker':<11} {worker_peak:5.0f} MiB  target < {MEMORY_LIMIT_MIB} MiB  {verdict(ok)}")


def estimate(size, tiles, one, two, workers_list=(1, 2, 8, 32)):
    """Lines for a 100-tile region of full-size tiles on N workers, scaled from the measured 4-tile region."""
    scale = (FULL_TILE / size) ** 2  # pixels (and bytes) of a full tile per measured tile
    worker_seconds_per_tile = one["tasks_seconds"] / 4  # one worker does all tasks one after the other
    merge_per_tile = two["merge_seconds"] / 4  # in the client, whatever the number of workers
    bytes_per_tile = sum(path.stat().st_size for path in tiles) / 4
    region_pixels = REGION_TILES * FULL_TILE**2
    tasks = REGION_TILES * (FULL_TILE // 2048) ** 2  # pieces of 4 x 4 blocks of 512
    lines = [
        f"estimate for {REGION_TILES} tiles of {FULL_TILE}^2 x 64 ({region_pixels / 1e9:.1f} Gpixel): {tasks} tasks, "
        f"{REGION_TILES * bytes_per_tile * scale / 1e9:.0f} GB read (each tile once, as in the run in QGIS)"
    ]
    for workers in workers_list:
        compute = REGION_TILES * scale * worker_seconds_per_tile / workers
        merge = REGION_TILES * scale * merge_per_tile
        total = compute + merge + two["startup"]
        lines.append(
            f"  {workers:3d} worker(s): {total / 60:7.1f} min = tasks {compute / 60:6.1f} min + merge in the client "
            f"{merge / 60:5.1f} min + start-up {two['startup']:.0f} s"
        )
    lines.append(
        "  (workers on other machines: tasks scale with the workers while the cluster's disks and network keep up; the "
        "merge stays one pass in the client)"
    )
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048, help="tile side in pixels (default 2048; 8192 is full size)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each timing (the fastest is kept; default 1)")
    args = parser.parse_args()
    tiles = tile_paths(args.size)
    for seed, path in enumerate(tiles):
        if not path.exists():
            make_tile(path, args.size, seed)
    folder = tiles[0].parent
    out = WORK / "out"
    out.mkdir(parents=True, exist_ok=True)
    load_start = os.getloadavg()[0]
    print(f"region: 4 tiles of {args.size}^2 x 64 ({2 * args.size} x {2 * args.size} pixels), {os.cpu_count()} cores")
    print(f"load average at the start {load_start:.2f}")

    base = measure("in_process", folder, out / "cluster-base.tif", repeat=args.repeat)
    # one worker on one core, beside two workers with a core each: what adding a worker (and its core) gives. One
    # worker left the whole machine keeps ~1.5 cores busy (it reads ahead while it computes); the in-process line
    # is that use of the whole machine.
    one = measure("on_cluster", folder, out / "cluster-1.tif", 1, repeat=args.repeat, cores=1)
    two = measure("on_cluster", folder, out / "cluster-2.tif", 2, repeat=args.repeat)

    report(base, one, two, "similarity", args.repeat)
    same = all(pixels(out / name) == pixels(out / "cluster-base.tif") for name in ("cluster-1.tif", "cluster-2.tif"))
    print(f"cluster outputs identical to the in-process one, bit for bit: {same}")
    for line in estimate(args.size, tiles, one, two):
        print(line)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
