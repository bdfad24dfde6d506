"""Benchmark the panel's interactive similarity: embedding overviews on geoembed:load's output and the first view.

On the first tile of bench_analysis.py (AEF-like, SIZE x SIZE x 64), for each size:
  load        geoembed:load of the tile without overviews (the baseline of the overviews' cost)
  load+ovr    the same load with OVERVIEWS=true                     <= 1.3x the load (else OVERVIEWS defaults to false)
  first view  the panel's first heatmap after a click: the query read at full resolution, the visible extent
              (the whole layer on a 1600 x 1000 screen) from the overview level that fits, written as a layer
                                                                   < 1 s, and the pixels it reads do not grow with SIZE
  full        today's click: the full-resolution heatmap (geoembed:similarity's code path, the background refinement)
Each measurement runs in a fresh process (GDAL_CACHEMAX=256 MB), so its peak RSS (VmHWM) is its own.

    .venv/bin/python bench/bench_interactive.py [--size 4096 | --sizes 2048,4096] [--repeat N] [--keep]
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
from bench.bench_analysis import Quiet, tile_paths, verdict  # noqa: E402
from bench.bench_load import peak_rss_kib  # noqa: E402

WORK = ROOT / "build" / "bench"
SCREEN = (1600, 1000)
OVERVIEW_COST_TARGET = 0.3
FIRST_VIEW_TARGET_S = 1.0


# --- measured code paths (each runs in a child process) ----------------------------------------------------


def load(tile, out, overviews=""):
    from geoembed.loaders.load import LoadRequest, run

    run(LoadRequest(output=str(out), product="aef", source=str(tile), overviews=bool(overviews)), log=Quiet())


def example_points(grid):
    return [
        (grid.x0 + (c + 0.5) * grid.res_x, grid.y0 - (r + 0.5) * grid.res_y) for c, r in ((100, 200), (900, 700), (1500, 300))
    ]


def first_view(out, preview):
    """What the panel does on a click (ui/similarity_panel.py: SimilarityPanel.preview), without QGIS."""
    from geoembed.analysis.similarity import preview_heatmap, query_at
    from geoembed.loaders.raster.embedding_tiff import EmbeddingTiff

    raster = EmbeddingTiff(str(out))
    try:
        query, negative = query_at(raster, example_points(raster.grid))
    finally:
        raster.close()
    xmin, ymin, xmax, ymax = raster.grid.bounds  # zoomed to the layer: the screen's wider side has margins
    centre, half = (xmin + xmax) / 2, (ymax - ymin) / 2 * SCREEN[0] / SCREEN[1]
    view = (centre - half, ymin, centre + half, ymax)
    factor = preview_heatmap(str(out), query, negative, view, *SCREEN, str(preview))
    print("factor", factor, file=sys.stderr)


def full(out, heatmap):
    from geoembed.analysis.similarity import SimilarityRaster, query_at
    from geoembed.loaders.raster.embedding_tiff import EmbeddingTiff
    from geoembed.loaders.raster.writer import OutputSpec, write_rasters

    raster = EmbeddingTiff(str(out))
    query, negative = query_at(raster, example_points(raster.grid))
    result = SimilarityRaster(raster, query, negative, 10)
    try:
        spec = OutputSpec(str(heatmap), ("similarity",))
        write_rasters(raster.grid, [spec], lambda w: [result.read(w)], order=result.order)
    finally:
        result.close()


# --- harness ---------------------------------------------------------------------------------------


def child(kind, *args):
    """Time one code path; the modules it uses are imported first (in QGIS the plugin has them loaded already)."""
    import resource

    import geoembed.analysis.similarity  # noqa: F401
    import geoembed.loaders.load  # noqa: F401

    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    globals()[kind](*args)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime  # all threads: GDAL's too
    print(f"cpu {cpu}", file=sys.stderr)
    print(seconds, peak_rss_kib())


LAST_TIMES = []  # every time of the last measure(), for the spread


def measure(kind, *args, repeat=1):
    """(seconds, peak MiB, stderr) of one code path in fresh processes: the fastest time and the highest peak."""
    code = f"import sys; sys.path.insert(0, {str(ROOT)!r}); import bench.bench_interactive as b; b.child(*sys.argv[1:])"
    runs, errors = [], ""
    for _ in range(repeat):
        result = subprocess.run(
            [sys.executable, "-c", code, kind] + [str(a) for a in args],
            capture_output=True,
            text=True,
            env={**os.environ, "GDAL_CACHEMAX": "256"},
        )
        if result.returncode:
            print(result.stderr[-12000:], file=sys.stderr)
        result.check_returncode()
        seconds, rss_kib = result.stdout.split()[-2:]
        runs.append((float(seconds), int(rss_kib) / 1024))
        errors += result.stderr
    LAST_TIMES[:] = [s for s, _ in runs]
    return min(s for s, _ in runs), max(m for _, m in runs), errors


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, help="one tile side (default: --sizes)")
    parser.add_argument("--sizes", default="2048,4096", help="tile sides, comma-separated (default 2048,4096)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each timing (the fastest is kept; default 1)")
    parser.add_argument("--keep", action="store_true", help="keep the loaded outputs under build/bench/interactive-SIZE")
    args = parser.parse_args()
    sizes = [args.size] if args.size else [int(s) for s in args.sizes.split(",")]
    print(f"load average {os.getloadavg()[0]:.2f} (other processes on the machine skew the times); screen {SCREEN}")

    def row(name, seconds, mib, base_name, base_seconds, target, ok, note=""):
        print(
            f"{name:<16} {seconds:8.2f} s  peak {mib:5.0f} MiB | {base_name} {base_seconds:8.2f} s | "
            f"ratio {seconds / base_seconds:6.2f}x  target {target:<10} {verdict(ok)}{note}",
            flush=True,
        )

    views = {}
    for size in sizes:
        tile = tile_paths(size)[0]
        if not tile.exists():
            sys.exit(f"{tile} is missing: run bench/bench_analysis.py --size {size} first (it makes the tiles).")
        folder = WORK / f"interactive-{size}"
        folder.mkdir(parents=True, exist_ok=True)
        out = folder / "load.tif"
        for stale in (out, Path(f"{out}.ovr")):
            stale.unlink(missing_ok=True)
        load_s, load_mib, _ = measure("load", tile, out, repeat=args.repeat)
        plain = out.stat().st_size
        print(f"load-{size:<11} {load_s:8.2f} s  peak {load_mib:5.0f} MiB | {plain / 2**30:.2f} GiB Float32 (baseline)")
        ovr_s, ovr_mib, _ = measure("load", tile, out, "overviews", repeat=args.repeat)
        added = Path(f"{out}.ovr").stat().st_size
        target = f"<= {1 + OVERVIEW_COST_TARGET:g}x"
        row(f"load+ovr-{size}", ovr_s, ovr_mib, f"load-{size}", load_s, target, ovr_s <= (1 + OVERVIEW_COST_TARGET) * load_s)
        print(f"overviews-{size} size: +{added / 2**20:.0f} MiB (+{100 * added / plain:.0f} % of the file)")
        full_s, full_mib, _ = measure("full", out, folder / "full.tif", repeat=args.repeat)
        print(f"full-{size:<11} {full_s:8.2f} s  peak {full_mib:5.0f} MiB | full-resolution heatmap (today's click)")
        view_s, view_mib, errors = measure("first_view", out, folder / "preview.tif", repeat=max(args.repeat, 3))
        spread = f"fastest of {len(LAST_TIMES)}; spread {min(LAST_TIMES):.2f}-{max(LAST_TIMES):.2f} s"
        factor = next(line.split()[1] for line in errors.splitlines() if line.startswith("factor"))
        cpu = min(float(line.split()[1]) for line in errors.splitlines() if line.startswith("cpu"))
        row(
            f"first-view-{size}",
            view_s,
            view_mib,
            f"full-{size}",
            full_s,
            f"< {FIRST_VIEW_TARGET_S:g} s",
            view_s < FIRST_VIEW_TARGET_S,
            f"  [{spread}]",
        )
        from osgeo import gdal

        preview = gdal.Open(str(folder / "preview.tif"))
        views[size] = (view_s, int(factor), preview.RasterXSize, preview.RasterYSize)
        print(
            f"first-view-{size} read overview x{factor}: {preview.RasterXSize} x {preview.RasterYSize} pixels x 64 bands; "
            f"CPU time {cpu:.2f} s (all threads: the work itself, whatever else runs on the machine)"
        )
        preview = None
        if not args.keep:
            for name in ("load.tif", "load.tif.ovr", "full.tif", "preview.tif"):
                (folder / name).unlink(missing_ok=True)
    if len(views) > 1:
        pixels = {size: w * h for size, (_, _, w, h) in views.items()}
        same = len(set(pixels.values())) == 1
        print(
            "first view reads the same number of pixels at every size: "
            + ", ".join(f"{s}: {p} px in {views[s][0]:.2f} s" for s, p in pixels.items())
            + f"  {verdict(same)}"
        )
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
