"""Benchmark classification at the read floor: each method's class map of one AEF tile beside the read of that tile.

For each method (nearest_centroid, logistic_regression, knn, random_forest, gradient_boosting, neural_network),
train on 2,000 labelled points as bench_analysis.classify does (four "land covers": the argmax of a random projection
of the embeddings), then time predicting and writing the classes and the confidence of one tile, beside a
block-by-block GDAL read of the same tile measured in the same run. Targets (ratio to that read): nearest_centroid
and logistic_regression <= 2x, knn <= 4x, gradient_boosting and neural_network <= 10x (the issue's forest target
allows "another method that gives the same accuracy faster": the forest itself is timed without a target); peak
memory < 1.5 GB. Each measurement runs in a fresh process (GDAL_CACHEMAX=256 MB). Each line also gives the CPU time
(all threads) and its ratio to the read's, which other work on the machine skews less than the wall-clock ratio.

Accuracy is measured on 4,000 held-out points labelled the same way, for the model train fits by default and for
today's default settings of the method (TODAY; for the two fast tree-slot methods, today's default method, the
random forest); the one must not be more than one point below the other.

--rows R classifies (and reads, for the baseline) only the tile's first R rows: for the slow methods, whose
ratio to the read does not depend on the area.

    .venv/bin/python bench/bench_classify.py [--size 4096] [--only METHOD] [--rows R] [--repeat N]
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import tests  # noqa: E402, F401 - puts the plugin (the repository root) on sys.path as `geoembed`
from bench.bench_analysis import MEMORY_LIMIT_MIB, existing_tile, open_input  # noqa: E402
from bench.bench_load import peak_rss_kib  # noqa: E402

WORK = ROOT / "build" / "bench"
# the random forest target (<= 10x, "or another method that gives the same accuracy faster") is met by
# neural_network, held to the forest's accuracy; the forest itself is timed without a target (None)
TARGETS = {
    "nearest_centroid": 2.0,
    "logistic_regression": 2.0,
    "knn": 4.0,
    "random_forest": None,
    "gradient_boosting": 10.0,
    "neural_network": 10.0,
}
TODAY = {  # the settings train used before issue 15, for the accuracy comparison
    "nearest_centroid": {},
    "logistic_regression": {"max_iter": 2000},
    "knn": {"n_neighbors": 5, "weights": "distance"},
    "random_forest": {"n_estimators": 200, "n_jobs": -1, "random_state": 0},
    # the fast tree method is held to today's default tree method: the random forest (today_model fits one)
    "gradient_boosting": {"n_estimators": 200, "n_jobs": -1, "random_state": 0},
    "neural_network": {"n_estimators": 200, "n_jobs": -1, "random_state": 0},
}
TRAIN_POINTS, HELD_OUT_POINTS = 2000, 4000
CPU_TIMED = [0.0]  # CPU seconds of classify's timed part


def labelled_points(raster, count, seed, projection):
    """(features, labels) at `count` random pixel centres: the argmax of a projection of the embeddings."""
    import numpy as np

    from geoembed.analysis.sampling import sample

    g, rng = raster.grid, np.random.default_rng(seed)
    xs = g.x0 + (rng.integers(0, g.width, count) + 0.5) * g.res_x
    ys = g.y0 - (rng.integers(0, g.height, count) + 0.5) * g.res_y
    features, valid = sample(raster, xs, ys)
    features = features[valid]
    return features, (features @ projection).argmax(axis=1)


def read_rows(tile, rows):
    """Baseline: block-by-block GDAL read (bench_load.baseline_read's 512-pixel blocks) of the tile's first rows."""
    from osgeo import gdal

    dataset = gdal.Open(str(tile))
    height = min(int(rows), dataset.RasterYSize)
    for y in range(0, height, 512):
        for x in range(0, dataset.RasterXSize, 512):
            dataset.ReadAsArray(x, y, min(512, dataset.RasterXSize - x), min(512, height - y))


def first_rows(raster, rows):
    """The raster's first rows as a raster of their own (windows from (0, 0) are the same in both)."""
    from geoembed.loaders.model import EmbeddingRaster
    from geoembed.loaders.raster.grid import Window

    class Rows(EmbeddingRaster):
        grid = raster.grid.window_grid(Window(0, 0, raster.grid.width, min(int(rows), raster.grid.height)))
        band_names = raster.band_names
        provenance = raster.provenance

        def read(self, window):
            return raster.read(window)

    return Rows()


def today_model(method):
    from geoembed.analysis.classify import NearestCentroid

    if method == "nearest_centroid":
        return NearestCentroid()
    if method == "logistic_regression":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(**TODAY[method])
    if method == "knn":
        from sklearn.neighbors import KNeighborsClassifier

        return KNeighborsClassifier(**TODAY[method])
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(**TODAY[method])


def classify(tile, out, method, rows):
    """Train (not timed) then predict and write classes + confidence of the tile (timed). Prints the time and the
    held-out accuracy of today's and the default model."""
    import numpy as np
    from osgeo import gdal

    from geoembed.analysis import classify as c
    from geoembed.loaders.raster.writer import OutputSpec, write_rasters

    raster = open_input(tile)
    try:
        projection = np.random.default_rng(3).standard_normal((64, 4))  # four "land covers"
        features, labels = labelled_points(raster, TRAIN_POINTS, 3, projection)
        held, truth = labelled_points(raster, HELD_OUT_POINTS, 11, projection)
        estimator = c.make_model(method).fit(features, labels)
        model = c.TrainedModel(estimator, list("ABCD"), raster.band_names, "aef", method)
        # the numpy predictor that makes the class map
        accuracy = float((model.predict(held)[0] == truth).mean())
        before = float((today_model(method).fit(features, labels).predict(held) == truth).mean())
        started, cpu = time.perf_counter(), cpu_seconds()
        part = first_rows(raster, rows)
        producer = c.ClassRasters(part, model)
        specs = [
            OutputSpec(str(out), ("class",), gdal.GDT_Byte, 0),
            OutputSpec(str(out).replace(".tif", "-confidence.tif"), ("confidence",), gdal.GDT_Float32, -1.0),
        ]
        try:
            write_rasters(part.grid, specs, producer.produce, order=producer.order)
        finally:
            producer.close()
        seconds = time.perf_counter() - started
        CPU_TIMED[0] = cpu_seconds() - cpu
    finally:
        raster.close()
    print("accuracy", before, accuracy)
    return seconds


def cpu_seconds():
    """User + system CPU time of this process, its threads included (OpenBLAS's, the read-ahead's)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child(kind, *args):
    started, cpu = time.perf_counter(), cpu_seconds()
    seconds = globals()[kind](*args)
    if seconds is None:
        seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    else:  # the timed part's CPU time (kind returned its wall time and left CPU_TIMED)
        cpu = CPU_TIMED[0]
    print(seconds, peak_rss_kib(), cpu)


def measure(kind, *args, repeat=1):
    """(seconds, peak MiB, CPU seconds, extra output lines) of one code path, each run in a fresh process: the fastest
    time (and the CPU time of that run) and the highest peak."""
    code = f"import sys; sys.path.insert(0, {str(ROOT)!r}); import bench.bench_classify as b; b.child(*sys.argv[1:])"
    argv = [sys.executable, "-c", code, kind] + [str(a) for a in args]
    runs, lines = [], []
    for _ in range(repeat):
        result = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "GDAL_CACHEMAX": "256"})
        if result.returncode:
            print(result.stderr[-12000:], file=sys.stderr)
        result.check_returncode()
        *lines, last = result.stdout.strip().splitlines()
        seconds, rss_kib, cpu = last.split()
        runs.append((float(seconds), int(rss_kib) / 1024, float(cpu)))
    fastest = min(runs)
    return fastest[0], max(m for _, m, _ in runs), fastest[2], lines


def verdict(ok):
    return "PASS" if ok else "FAIL"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096, help="tile side in pixels (default 4096)")
    parser.add_argument("--only", choices=list(TARGETS), help="one method")
    parser.add_argument("--rows", type=int, help="classify only the first ROWS rows of the tile (default: all)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each timing (the fastest is kept; default 1)")
    args = parser.parse_args()
    tile = existing_tile(args.size)
    out = WORK / "out"
    out.mkdir(parents=True, exist_ok=True)
    print(f"load average {os.getloadavg()[0]:.2f} (other processes on the machine skew the times)")
    print(f"input: {tile.name}, {args.size} x {args.size} x 64 int8, {tile.stat().st_size / 2**20:.0f} MiB ZSTD")
    rows = min(args.rows or args.size, args.size)
    read_s, read_mib, read_cpu, _ = measure("read_rows", tile, rows, repeat=args.repeat)
    print(
        f"{'read':<20} {read_s:8.1f} s  peak {read_mib:5.0f} MiB | block-by-block GDAL read of {rows} x {args.size} "
        f"pixels (baseline) | cpu {read_cpu:.1f} s"
    )
    memory = []
    for method, target in TARGETS.items():
        if args.only not in (None, method):
            continue
        seconds, mib, cpu, lines = measure("classify", tile, out / f"classes-{method}.tif", method, rows, repeat=args.repeat)
        before, after = (float(v) for v in lines[-1].split()[1:])
        if target is None:
            aim = "no target of its own (neural_network meets the forest's)  INFO"
        else:
            aim = f"target <= {target:g}x  {verdict(seconds <= target * read_s)}"
        print(
            f"{method:<20} {seconds:8.1f} s  peak {mib:5.0f} MiB | read {read_s:8.1f} s | ratio {seconds / read_s:6.2f}x  "
            f"{aim} | accuracy {after:.1%} (today's default {before:.1%}) "
            f"{verdict(after >= before - 0.01)} | cpu {cpu:.1f} s, {cpu / read_cpu:.2f}x the read's "
            "(less skewed by load)",
            flush=True,
        )
        memory.append((method, mib))
    for method, mib in memory:
        print(f"memory {method:<20} {mib:5.0f} MiB  target < {MEMORY_LIMIT_MIB} MiB  {verdict(mib < MEMORY_LIMIT_MIB)}")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
