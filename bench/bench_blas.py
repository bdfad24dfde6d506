"""Benchmark the matrix products inside Debian's qgis_process, where GSL's reference CBLAS shadows NumPy's BLAS.

geoembed:similarity (5 query points, K=10) and geoembed:classify (a kNN model trained on 2,000 points of 4 classes)
run through `qgis_process.bin run` on the first bench tile (bench_analysis.tile_paths), each in a fresh process:
  after     as shipped: analysis.blas.matmul reaches OpenBLAS through SciPy's Fortran BLAS
  baseline  GEOEMBED_BLAS=numpy: every product is NumPy's `a @ b`, i.e. GSL's CBLAS in qgis_process (as before)
Both runs must write the same classes (kNN's vote does not change with the last bits of a distance) and similarity
within float32 rounding; peak memory is the qgis_process child's (RUSAGE_CHILDREN).

    .venv/bin/python bench/bench_blas.py [--size 2048] [--repeat N]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import tests  # noqa: E402 - puts the plugin (the repository root) on sys.path as `geoembed`
from bench.bench_analysis import WORK, make_tile, open_input, tile_paths, verdict  # noqa: E402

QGIS_PROCESS = shutil.which("qgis_process.bin") or "/usr/bin/qgis_process.bin"
# similarity is read-bound (its one gemv per block is a few % of the run): no target; kNN's distances are products
TARGETS = {"similarity": None, "classify": 2.0}


def qgis_env(folder):
    """A throw-away QGIS profile with geoembed enabled, as tests/e2e/conftest.py makes one."""
    profile, runtime = folder / "profile", folder / "xdg-runtime"
    for path in (profile, runtime):
        path.mkdir(parents=True, exist_ok=True)
    runtime.chmod(0o700)
    env = {key: value for key, value in os.environ.items() if not key.startswith("QGIS_")}
    purelib = sysconfig.get_paths()["purelib"]
    env.update(
        QT_QPA_PLATFORM="offscreen",
        QGIS_PLUGINPATH=str(tests.PLUGINS),
        QGIS_CUSTOM_CONFIG_PATH=str(profile),
        XDG_RUNTIME_DIR=str(runtime),
        PYTHONPATH=os.pathsep.join(p for p in (purelib, os.environ.get("PYTHONPATH")) if p),
        GDAL_CACHEMAX="256",
    )
    subprocess.run([QGIS_PROCESS, "plugins", "enable", "geoembed"], env=env, capture_output=True, check=False)
    return env


def point(crs, xy):
    """A GeoJSON point feature (longitude, latitude) of a point in crs."""
    from osgeo import osr

    source, target = osr.SpatialReference(), osr.SpatialReference()
    source.SetFromUserInput(crs)
    target.ImportFromEPSG(4326)
    target.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    lon, lat, _ = osr.CoordinateTransformation(source, target).TransformPoint(*xy)
    return {"type": "Feature", "properties": {}, "geometry": {"type": "Point", "coordinates": [lon, lat]}}


def inputs(tile, folder):
    """(query points GeoJSON, kNN model file) for the tile, made in this process."""
    import numpy as np

    from geoembed.analysis import classify as c
    from geoembed.analysis.sampling import sample

    raster = open_input(tile)
    try:
        g, rng = raster.grid, np.random.default_rng(3)
        points = [(g.x0 + (i * 997 % g.width + 0.5) * g.res_x, g.y0 - (i * 1511 % g.height + 0.5) * g.res_y) for i in range(1, 6)]
        query = folder / "query.geojson"
        query.write_text(json.dumps({"type": "FeatureCollection", "features": [point(g.crs, p) for p in points]}))
        xs = g.x0 + (rng.integers(0, g.width, 2000) + 0.5) * g.res_x
        ys = g.y0 - (rng.integers(0, g.height, 2000) + 0.5) * g.res_y
        values, valid = sample(raster, xs, ys)
        values = values[valid]
        labels = (values @ rng.standard_normal((64, 4))).argmax(axis=1)  # four "land covers", as bench_analysis
        model = c.TrainedModel(c.make_model("knn").fit(values, labels), list("ABCD"), raster.band_names, "aef", "knn")
        model_path = folder / "knn.geoembed-model"
        model.save(str(model_path))
        return query, model_path
    finally:
        raster.close()


def run(env, algorithm, **params):
    """(seconds, peak MiB) of one `qgis_process.bin run` (its own process: RUSAGE_CHILDREN's peak is its own)."""
    argv = [QGIS_PROCESS, "--json", "run", f"geoembed:{algorithm}", "--", *(f"{k}={v}" for k, v in params.items())]
    code = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "print(r.stdout[-4000:], r.stderr[-4000:], file=sys.stderr) if r.returncode else None\n"
        "print(r.returncode, time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    result = subprocess.run([sys.executable, "-c", code, *argv], env=env, capture_output=True, text=True)
    returncode, seconds, rss_kib = result.stdout.split()[-3:]
    if returncode != "0":
        sys.exit(f"{algorithm} failed:\n{result.stderr}")
    return float(seconds), int(rss_kib) / 1024


def best(env, repeat, algorithm, **params):
    runs = [run(env, algorithm, **params) for _ in range(repeat)]
    return min(s for s, _ in runs), max(m for _, m in runs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048, help="tile side in pixels (default 2048)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each timing (the fastest is kept; default 1)")
    args = parser.parse_args()
    tile = tile_paths(args.size)[0]
    if not tile.exists():
        make_tile(tile, args.size, 0)
    out = WORK / "out" / "blas"
    out.mkdir(parents=True, exist_ok=True)
    import numpy as np
    from osgeo import gdal

    print(f"load average {os.getloadavg()[0]:.2f} (other processes on the machine skew the times); {QGIS_PROCESS}")
    with tempfile.TemporaryDirectory(prefix="bench-blas-") as scratch:
        env = qgis_env(Path(scratch))
        query, model = inputs(tile, Path(scratch))
        print(f"input: {tile.name} ({args.size} x {args.size} x 64 int8); kNN model of 2000 points, 4 classes")
        for name, algorithm, params in (
            ("similarity", "similarity", {"INPUT": tile, "QUERY": query, "K": 10}),
            ("classify", "classify", {"INPUT": tile, "MODEL": model}),
        ):
            figures, arrays = {}, {}
            for kind, extra in (("numpy", {"GEOEMBED_BLAS": "numpy"}), ("matmul", {})):
                output = out / f"{name}-{kind}.tif"
                figures[kind] = best({**env, **extra}, args.repeat, algorithm, OUTPUT=output, **params)
                arrays[kind] = gdal.Open(str(output)).ReadAsArray()
            if name == "classify":
                assert np.array_equal(arrays["numpy"], arrays["matmul"]), "classes differ between the two BLAS"
            else:
                np.testing.assert_allclose(arrays["numpy"], arrays["matmul"], atol=1e-5)
            (seconds, mib), (base_s, _), target = figures["matmul"], figures["numpy"], TARGETS[name]
            judged = f"target >= {target:g}x  {verdict(base_s >= target * seconds)}" if target else "target (none)"
            print(
                f"{name:<11} {seconds:8.1f} s  peak {mib:5.0f} MiB | numpy @ (GSL CBLAS) {base_s:8.1f} s | "
                f"speed-up {base_s / seconds:6.2f}x  {judged}",
                flush=True,
            )
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    started = time.perf_counter()
    main()
    print(f"({time.perf_counter() - started:.0f} s in all)")
