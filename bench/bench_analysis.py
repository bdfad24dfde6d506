"""Benchmark the analysis algorithms' code paths on full-size AEF tiles (8192 x 8192 x 64, int8, south-up).

Each figure is printed beside a baseline measured in the same run, with the issue's target:
  similarity  over one tile (the raw tile as INPUT)     <= 3x one block-by-block GDAL read of the tile
  aggregate   resampling 10 m -> 100 m of that tile     <= 2x that read
  sample      100,000 points over four tiles            >= 20x faster than a per-point rasterio sample() loop
  classify    train on 2,000 points, write classes and confidence (no time target)
  every algorithm: peak memory < 1.5 GB (1536 MiB)
Each measurement runs in a fresh process (GDAL_CACHEMAX=256 MB), so its peak RSS (VmHWM) is its own.
Inputs are generated once under build/bench/analysis-SIZE/ and reused.

    .venv/bin/python bench/bench_analysis.py [--size 8192 | --quick] [--only NAME] [--repeat N] [--profile]
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
from bench.bench_load import baseline_read, peak_rss_kib  # noqa: E402, F401 (baseline_read: run by child())

WORK = ROOT / "build" / "bench"
POINTS = 100_000
MEMORY_LIMIT_MIB = 1536
CRS_EPSG, X0, Y0, RES = 32631, 600000.0, 4900000.0, 10.0


class Quiet:
    def info(self, message):
        pass

    warning = info


# --- inputs -------------------------------------------------------------------------------------


def tile_paths(size):
    """Four south-up tiles in a 2 x 2 block, in the published folder layout; the first is the single-tile input."""
    folder = WORK / f"analysis-{size}" / "2024" / "31N"
    return [folder / f"xbenchanalysis{ty}{tx}0-{ty * size:010d}-{tx * size:010d}.tiff" for ty in (0, 1) for tx in (0, 1)]


def existing_tile(size):
    """The single-tile input of the benches that do not make tiles themselves; a missing one stops the bench."""
    tile = tile_paths(size)[0]
    if not tile.exists():
        sys.exit(f"{tile} is missing: run bench/bench_analysis.py --size {size} once to make the tiles")
    return tile


def make_tile(path, size, seed, strip=1024):
    """A realistic-to-compress AEF tile: unit vectors of a smooth random field (two octaves) plus per-pixel noise
    over about half of it (textured land; the rest is homogeneous), quantised like AEF, with smooth nodata blobs
    (~1 %); ZSTD, 1024 x 1024 internal tiles, band interleave, BigTIFF. About 60 % of the raw size on disk."""
    import numpy as np
    from osgeo import gdal, osr

    from geoembed.loaders.products.aef import NODATA_Q, quantize

    rng = np.random.default_rng(seed)
    octaves = [
        (rng.standard_normal((64, size // cell + 2, size // cell + 2), dtype=np.float32), cell, w)
        for cell, w in ((64, 1.0), (16, 0.5))
    ]
    texture = rng.standard_normal((1, size // 64 + 2, size // 64 + 2), dtype=np.float32)  # where pixels are noisy

    def smooth(rows, cols, grid, cell):  # bilinear interpolation of a coarse grid at pixel centres
        fy, fx = (rows + 0.5) / cell, (cols + 0.5) / cell
        iy, ix = fy.astype(int), fx.astype(int)
        wy, wx = (fy - iy).astype(np.float32)[:, None], (fx - ix).astype(np.float32)
        along = grid[:, iy] * (1 - wy) + grid[:, iy + 1] * wy
        return along[:, :, ix] * (1 - wx) + along[:, :, ix + 1] * wx

    options = [
        "TILED=YES",
        "BLOCKXSIZE=1024",
        "BLOCKYSIZE=1024",
        "INTERLEAVE=BAND",
        "COMPRESS=ZSTD",
        "BIGTIFF=YES",
        "NUM_THREADS=ALL_CPUS",
        "PIXELTYPE=SIGNEDBYTE",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial")
    dataset = gdal.GetDriverByName("GTiff").Create(str(tmp), size, size, 64, gdal.GDT_Byte, options)
    dataset.SetGeoTransform(origin(path, size) + (0.0, RES))  # positive y pixel size: south-up
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(CRS_EPSG)
    dataset.SetProjection(srs.ExportToWkt())
    cols = np.arange(size)
    for y in range(0, size, strip):
        codes = np.empty((64, strip, size), dtype=np.int8)
        for r in range(y, y + strip, 128):
            rows = np.arange(r, r + 128)
            field = sum(w * smooth(rows, cols, grid, cell) for grid, cell, w in octaves)
            amplitude = np.clip(smooth(rows, cols, texture, 64), 0, 1) * np.float32(0.35)  # 0 over half the tile
            field += rng.standard_normal(field.shape, dtype=np.float32) * amplitude
            field /= np.sqrt(np.einsum("bij,bij->ij", field, field))
            part = codes[:, r - y : r - y + 128]
            part[:] = quantize(field)
            part[:, smooth(rows, cols, octaves[0][0][:1], 64)[0] > 1.6] = NODATA_Q
        for band in range(64):
            dataset.GetRasterBand(band + 1).WriteArray(codes[band].view(np.uint8), 0, y)
    for band in range(64):
        dataset.GetRasterBand(band + 1).SetNoDataValue(-128)
    dataset = None
    tmp.rename(path)


def origin(path, size):
    """(x_west, res, 0, y_south) of a tile from its YOFF/XOFF name."""
    yoff, xoff = (int(part) for part in path.stem.split("-")[1:])
    return (X0 + xoff * RES, RES, 0.0, Y0 + yoff * RES)


def make_points(path, size):
    """POINTS random points over the four tiles, at pixel centres jittered by up to 0.4 pixel (never on an edge)."""
    import numpy as np

    rng = np.random.default_rng(7)
    cols, rows = rng.integers(0, 2 * size, POINTS), rng.integers(0, 2 * size, POINTS)
    xs = X0 + (cols + 0.5 + rng.uniform(-0.4, 0.4, POINTS)) * RES
    ys = Y0 + (rows + 0.5 + rng.uniform(-0.4, 0.4, POINTS)) * RES
    np.save(path, np.stack([xs, ys]))


# --- measured code paths (each runs in a child process) ----------------------------------------------------


def open_input(source):
    from geoembed.loaders.open import open_embeddings

    return open_embeddings(str(source), Quiet())


def similarity(tile, out):
    """geoembed:similarity: 5 query points, K=10, heatmap written like the provider does."""
    from geoembed.analysis.regions import feature_vectors
    from geoembed.analysis.similarity import SimilarityRaster, query_vector
    from geoembed.loaders.raster.writer import OutputSpec, provenance_metadata, write_rasters

    raster, heatmap = open_input(tile), None
    try:
        g = raster.grid
        points = [
            ("point", (g.x0 + (i * 997 % g.width + 0.5) * g.res_x, g.y0 - (i * 1511 % g.height + 0.5) * g.res_y))
            for i in range(1, 6)
        ]
        query = query_vector([v for v in feature_vectors(raster, points) if v is not None])
        heatmap = SimilarityRaster(raster, query, None, 10)
        spec = OutputSpec(out, ("similarity",), metadata=provenance_metadata(raster.provenance))
        write_rasters(g, [spec], lambda window: [heatmap.read(window)], order=heatmap.order)
    finally:
        (heatmap or raster).close()  # as the provider: the derived raster closes its input


def aggregate(tile, out):
    """geoembed:resample MODE=aggregate RESOLUTION=100 on the tile's own CRS and origin."""
    from geoembed.analysis.resample import AggregateRaster
    from geoembed.loaders.raster.grid import grid_from_bounds
    from geoembed.loaders.raster.writer import write_geotiff

    raster, result = open_input(tile), None
    try:
        g = raster.grid
        result = AggregateRaster(raster, grid_from_bounds(g.crs, g.bounds, 100.0, anchor=(g.x0, g.y0)))
        result.provenance.resampling = "aggregate: sum of vectors, L2-normalised"
        write_geotiff(result, out)
    finally:
        (result or raster).close()


def classify(tile, out, method="random_forest"):
    """geoembed:train: sample 2,000 labelled points (4 classes), fit, write classes + confidence."""
    import numpy as np
    from osgeo import gdal

    from geoembed.analysis import classify as c
    from geoembed.analysis.sampling import sample
    from geoembed.loaders.raster.writer import OutputSpec, write_rasters

    raster = open_input(tile)
    try:
        g, rng = raster.grid, np.random.default_rng(3)
        xs = g.x0 + (rng.integers(0, g.width, 2000) + 0.5) * g.res_x
        ys = g.y0 - (rng.integers(0, g.height, 2000) + 0.5) * g.res_y
        features, valid = sample(raster, xs, ys)
        features = features[valid]
        labels = (features @ rng.standard_normal((64, 4))).argmax(axis=1)  # four "land covers"
        model = c.TrainedModel(c.make_model(method).fit(features, labels), list("ABCD"), raster.band_names, "aef", method)
        producer = c.ClassRasters(raster, model)
        specs = [
            OutputSpec(out, ("class",), gdal.GDT_Byte, 0),
            OutputSpec(out.replace(".tif", "-confidence.tif"), ("confidence",), gdal.GDT_Float32, -1.0),
        ]
        write_rasters(g, specs, producer.produce, order=producer.order)
    finally:
        raster.close()


def sample_points(folder, points, out):
    """geoembed:sample over the four tiles (INPUT = their folder)."""
    import numpy as np

    from geoembed.analysis.sampling import sample

    xs, ys = np.load(points)
    raster = open_input(folder)
    try:
        values, valid = sample(raster, xs, ys)
    finally:
        raster.close()
    np.save(out, values)


def rasterio_points(folder, points, out, count, by_block=""):
    """Baseline: one rasterio DatasetReader.sample() call per point on the raw tiles, de-quantised the same way.

    by_block: visit the points grouped by 1024-pixel block (cache-friendly, for checking every value quickly)."""
    import numpy as np
    import rasterio

    from geoembed.loaders.products.aef import DEQUANT_LUT, NODATA_Q

    xs, ys = np.load(points)[:, : int(count)]
    order = np.lexsort(((xs - X0) // (1024 * RES), (ys - Y0) // (1024 * RES))) if by_block else np.arange(len(xs))
    datasets = [rasterio.open(p) for p in sorted(Path(folder).rglob("*.tiff"))]
    which = np.full(len(xs), -1)
    for i, d in enumerate(datasets):
        (left, right), (south, north) = sorted(d.bounds[::2]), sorted(d.bounds[1::2])  # south-up: bottom > top
        which[(xs > left) & (xs < right) & (ys > south) & (ys < north)] = i
    assert (which >= 0).all()
    values = np.full((len(xs), 64), np.nan, dtype=np.float32)
    for i in order:
        codes = next(datasets[which[i]].sample([(xs[i], ys[i])])).astype(np.uint8)  # int8 or uint8 codes, as unsigned bytes
        if not (codes == NODATA_Q + 256).any():
            values[i] = DEQUANT_LUT[codes]
    np.save(out, values)


# --- harness ---------------------------------------------------------------------------------------


def child(kind, profile, *args):
    if profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.runcall(globals()[kind], *args)
        seconds = time.perf_counter() - started
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(25)
    else:
        started = time.perf_counter()
        globals()[kind](*args)
        seconds = time.perf_counter() - started
    print(seconds, peak_rss_kib())


def measure(kind, *args, profile=False, repeat=1):
    """(seconds, peak MiB) of one code path, each run in a fresh process: the fastest time and the highest peak."""
    code = f"import sys; sys.path.insert(0, {str(ROOT)!r}); import bench.bench_analysis as b; b.child(*sys.argv[1:])"
    argv = [sys.executable, "-c", code, kind, "1" if profile else ""] + [str(a) for a in args]
    runs = []
    for _ in range(repeat):
        result = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "GDAL_CACHEMAX": "256"})
        if result.returncode or profile:
            print(result.stderr[-12000:], file=sys.stderr)
        result.check_returncode()
        seconds, rss_kib = result.stdout.split()[-2:]
        runs.append((float(seconds), int(rss_kib) / 1024))
    return min(s for s, _ in runs), max(m for _, m in runs)


def verdict(ok):
    return "PASS" if ok else "FAIL"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8192, help="tile side in pixels (default 8192)")
    parser.add_argument("--quick", action="store_true", help="2048-pixel tiles, for a fast check")
    parser.add_argument("--only", choices=["similarity", "aggregate", "classify", "sample"])
    parser.add_argument("--method", default="random_forest", help="classifier of classify (default random_forest)")
    parser.add_argument(
        "--baseline-points",
        type=int,
        default=2000,
        help="points in the per-point rasterio loop (~50 ms each); its time is scaled to all points",
    )
    parser.add_argument("--profile", action="store_true", help="print cProfile's top functions of each geoembed child")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each timing (the fastest is kept; default 1)")
    args = parser.parse_args()
    size = 2048 if args.quick else args.size
    tiles = tile_paths(size)
    started = time.perf_counter()
    for seed, path in enumerate(tiles):
        if not path.exists():
            make_tile(path, size, seed)
    out = WORK / "out"
    out.mkdir(parents=True, exist_ok=True)
    points = out / f"points-{size}.npy"
    if not points.exists():
        make_points(points, size)
    gib = sum(p.stat().st_size for p in tiles) / 2**30
    git = ["git", "-C", str(ROOT)]
    commit = subprocess.run(git + ["rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip() or "?"
    dirty = subprocess.run(git + ["status", "--porcelain", "geoembed"], capture_output=True, text=True).stdout.strip()
    print(
        f"code: {commit}{' + uncommitted changes in geoembed/' if dirty else ''}; load average {os.getloadavg()[0]:.2f} "
        "(other processes on the machine skew the times)"
    )
    print(
        f"inputs: 4 tiles {size} x {size} x 64 int8, {gib:.1f} GiB ZSTD on disk, {POINTS} points "
        f"({time.perf_counter() - started:.0f} s)"
    )
    rows = []

    def row(name, seconds, mib, base_name, base_seconds, target, ok):
        rows.append((name, mib))
        print(
            f"{name:<11} {seconds:8.1f} s  peak {mib:5.0f} MiB | {base_name} {base_seconds:8.1f} s | "
            f"ratio {seconds / base_seconds:6.2f}x  target {target:<10} {verdict(ok)}",
            flush=True,
        )

    if args.only in (None, "similarity", "aggregate", "classify"):
        read_s, read_mib = measure("baseline_read", tiles[0], repeat=args.repeat)
        print(f"{'read':<11} {read_s:8.1f} s  peak {read_mib:5.0f} MiB | block-by-block GDAL read of one tile (baseline)")
    for name, target in (("similarity", 3.0), ("aggregate", 2.0)):
        if args.only in (None, name):
            seconds, mib = measure(name, tiles[0], out / f"{name}.tif", profile=args.profile, repeat=args.repeat)
            row(name, seconds, mib, "read", read_s, f"<= {target:g}x", seconds <= target * read_s)
    if args.only in (None, "classify"):
        seconds, mib = measure("classify", tiles[0], out / "classes.tif", args.method, profile=args.profile)
        row("classify", seconds, mib, "read", read_s, "(none)", True)
    if args.only in (None, "sample"):
        import numpy as np

        count = min(args.baseline_points, POINTS)
        base_s, _ = measure("rasterio_points", tiles[0].parent, points, out / "rasterio.npy", count)
        base_s *= POINTS / count
        seconds, mib = measure(
            "sample_points", tiles[0].parent, points, out / "sample.npy", profile=args.profile, repeat=args.repeat
        )
        if count < POINTS:  # every value is still checked, visiting the points block by block (not timed)
            measure("rasterio_points", tiles[0].parent, points, out / "rasterio-all.npy", POINTS, "by block")
        ours, theirs = np.load(out / "sample.npy"), np.load(out / "rasterio.npy")
        assert np.array_equal(ours[:count], theirs, equal_nan=True), "sample() differs from rasterio's values"
        theirs = np.load(out / ("rasterio.npy" if count == POINTS else "rasterio-all.npy"))
        assert np.array_equal(ours, theirs, equal_nan=True), "sample() differs from rasterio's values"
        print(
            f"sample: values at all {POINTS} points identical to rasterio's ({np.isnan(theirs[:, 0]).sum()} on nodata)"
            + ("" if count == POINTS else f"; rasterio time scaled x{POINTS / count:g} from the first {count} points")
        )
        rows.append(("sample", mib))
        print(
            f"{'sample':<11} {seconds:8.1f} s  peak {mib:5.0f} MiB | rasterio {base_s:8.1f} s | speed-up "
            f"{base_s / seconds:6.1f}x  target >= 20x     {verdict(base_s >= 20 * seconds)}"
        )
    for name, mib in rows:
        print(f"memory {name:<11} {mib:5.0f} MiB  target < {MEMORY_LIMIT_MIB} MiB  {verdict(mib < MEMORY_LIMIT_MIB)}")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
