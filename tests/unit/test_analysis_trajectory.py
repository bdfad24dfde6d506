"""trajectory: consecutive distances, largest break, anomalies and changed areas over N years against brute force
(pixel loops in float64, written out here, not imported from geoembed)."""

import math
import os

import numpy as np
import pytest
from osgeo import gdal

from geoembed.analysis import trajectory
from geoembed.loaders.errors import Cancelled, GeoEmbedError
from geoembed.loaders.model import NODATA
from geoembed.loaders.raster.writer import OutputSpec, write_rasters
from tests.unit.helpers import assert_one_line, cancel_after
from tests.unit.test_analysis_memraster import MemRaster, make_grid, random_raster

YEARS = [2019, 2020, 2021, 2022]
CHANGES = {2020: (5, 20, 40, 60), 2022: (25, 40, 5, 30)}  # rows, cols turned in that year (and kept afterwards)


def cos_distance(a, b):
    na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(x * x for x in b))
    if na == 0 or nb == 0:
        return None
    return 1.0 - sum(x * y for x, y in zip(a, b)) / (na * nb)


def series(width=70, height=50, bands=8, seed=3):
    """Four years: small noise each year, two boxes of turned vectors (2020 and 2022), nodata holes per year and
    one all-zero vector."""
    first = random_raster(width, height, bands=bands, seed=seed, holes=0.05)
    rng = np.random.default_rng(seed + 1)
    rasters, values = [first], first.values.copy()
    values[:, ~first.valid] = rng.normal(size=(bands, int((~first.valid).sum())))
    for year in YEARS[1:]:
        values = values + 0.05 * rng.normal(size=values.shape).astype(np.float32)
        if year in CHANGES:
            r0, r1, c0, c1 = CHANGES[year]
            box = values[:, r0:r1, c0:c1]  # clipped to small rasters
            box[...] = rng.normal(size=box.shape)
        year_values = values.copy()
        if year == 2021 and height > 30:
            year_values[:, 30, 10] = 0.0
        rasters.append(MemRaster(year_values, rng.random((height, width)) >= 0.05, first.grid))
    return rasters


def brute(rasters):
    """(distances (pairs, h, w), anomalies (years, h, w)) float64, NaN = nodata, with Python loops."""
    years, (height, width) = len(rasters), rasters[0].valid.shape
    distances = np.full((years - 1, height, width), np.nan)
    anomaly = np.full((years, height, width), np.nan)
    for row in range(height):
        for col in range(width):
            vectors = [r.values[:, row, col].astype(np.float64) if r.valid[row, col] else None for r in rasters]
            vectors = [v if v is not None and np.linalg.norm(v) > 0 else None for v in vectors]
            for pair in range(years - 1):
                if vectors[pair] is not None and vectors[pair + 1] is not None:
                    distances[pair, row, col] = cos_distance(vectors[pair], vectors[pair + 1])
            units = [v / math.sqrt(sum(x * x for x in v)) for v in vectors if v is not None]
            if len(units) >= 2:
                mean = sum(units) / len(units)
                for year, vector in enumerate(vectors):
                    if vector is not None:
                        anomaly[year, row, col] = cos_distance(vector, mean)
    return distances, anomaly


def run_series(rasters, tmp_path, labels=YEARS, threshold=None, block=16, anomaly=True):
    """Both passes through write_rasters, as the provider does: ({output: array}, Trajectory)."""
    scratch = str(tmp_path / "scratch.npy")
    traj = trajectory.Trajectory(rasters, labels, scratch, with_anomaly=anomaly, block=block)
    traj.compute()
    traj.threshold = traj.automatic_threshold()[0] if threshold is None else threshold
    keys = ["distance", "break_year", "break_size"] + (["anomaly"] if anomaly else [])
    types = {"break_year": (gdal.GDT_UInt16, trajectory.BREAK_NODATA)}
    specs = [OutputSpec(str(tmp_path / f"{key}.tif"), ("b",) * 3, *types.get(key, (gdal.GDT_Float32, NODATA))) for key in keys]
    specs[0].band_names = tuple(traj.band_names)
    specs[1].band_names = specs[2].band_names = ("x",)
    if anomaly:
        specs[3].band_names = tuple(str(label) for label in labels)
    write_rasters(rasters[0].grid, specs, lambda w: pick(traj, w, keys), block=block)
    out = {key: gdal.Open(spec.path).ReadAsArray() for key, spec in zip(keys, specs)}
    traj.close()
    assert not os.path.exists(scratch), "the scratch file must be removed"
    return out, traj


def pick(traj, window, keys):
    blocks = traj.produce(window)
    return [blocks[key] for key in keys]


@pytest.fixture(scope="module")
def four_years():
    rasters = series()
    return rasters, brute(rasters)


def as_nan(values):
    values = values.astype(np.float64)
    return np.where(values == NODATA, np.nan, values)


def test_consecutive_distances_equal_a_pixel_loop(four_years, tmp_path):
    rasters, (expected, _) = four_years
    out, traj = run_series(rasters, tmp_path)
    got = as_nan(out["distance"])
    assert got.shape == expected.shape == (3, 50, 70)
    assert np.array_equal(np.isnan(got), np.isnan(expected)), "nodata where either year is nodata or a zero vector"
    ok = ~np.isnan(expected)
    assert np.abs(got[ok] - expected[ok]).max() < 1e-5
    assert np.isnan(got[1:, 30, 10]).all() and not np.isnan(expected[0, 30, 10]), "the zero vector spoils its two pairs"
    assert traj.band_names == ["2019\u21922020", "2020\u21922021", "2021\u21922022"]


def test_break_year_and_size_are_the_largest_valid_pair(four_years, tmp_path):
    rasters, (expected, _) = four_years
    out, traj = run_series(rasters, tmp_path)
    year, size = out["break_year"], as_nan(out["break_size"])
    for row in range(expected.shape[1]):
        for col in range(expected.shape[2]):
            values = [(d, pair) for pair, d in enumerate(expected[:, row, col]) if not np.isnan(d)]
            if not values:
                assert year[row, col] == trajectory.BREAK_NODATA and np.isnan(size[row, col])
                continue
            best = max(d for d, _ in values)
            first_best = min(pair for d, pair in values if d == best)
            assert size[row, col] == pytest.approx(best, abs=1e-5)
            if abs(best - traj.threshold) < 1e-5:
                continue  # float32 against float64: either side of the threshold
            changed = best > traj.threshold
            assert year[row, col] == (YEARS[first_best + 1] if changed else trajectory.BREAK_NODATA)
    for change_year, (r0, r1, c0, c1) in CHANGES.items():
        box = year[r0:r1, c0:c1]
        assert (box[box != 0] == change_year).mean() > 0.9, f"the {change_year} box breaks in {change_year}"
    assert (year == trajectory.BREAK_NODATA).mean() > 0.5, "no break year where nothing changed"
    assert out["break_year"].dtype == np.uint16


def test_anomaly_is_the_distance_to_the_pixels_mean_direction(four_years, tmp_path):
    rasters, (_, expected) = four_years
    out, _ = run_series(rasters, tmp_path)
    got = as_nan(out["anomaly"])
    assert got.shape == expected.shape == (4, 50, 70)
    assert np.array_equal(np.isnan(got), np.isnan(expected))
    ok = ~np.isnan(expected)
    assert np.abs(got[ok] - expected[ok]).max() < 1e-5


def test_anomaly_needs_two_valid_years():
    grid = make_grid(1, 1)
    one = MemRaster(np.ones((3, 1, 1)), np.ones((1, 1), bool), grid)
    gone = MemRaster(np.ones((3, 1, 1)), np.zeros((1, 1), bool), grid)
    blocks = [one.read(w) for w in grid.blocks(1)] + [gone.read(w) for w in grid.blocks(1)]
    assert np.isnan(trajectory.anomalies(blocks)).all()


def test_changed_pixels_and_areas_per_pair_and_overall(four_years, tmp_path):
    rasters, (expected, _) = four_years
    out, traj = run_series(rasters, tmp_path)
    threshold = traj.threshold
    rows = traj.pair_summaries()
    assert [(r["from"], r["to"]) for r in rows] == list(zip(YEARS[:-1], YEARS[1:]))
    got = as_nan(out["distance"])
    for pair, row in enumerate(rows):
        valid = ~np.isnan(expected[pair])
        changed = int((got[pair][valid] > threshold).sum())
        assert row["valid_pixels"] == int(valid.sum())
        assert row["changed_pixels"] == changed
        assert row["changed_m2"] == pytest.approx(changed * 100.0)
        assert row["valid_m2"] == pytest.approx(valid.sum() * 100.0)
        assert row["changed_fraction"] == pytest.approx(changed / valid.sum())
    r0, r1, c0, c1 = CHANGES[2020]
    box_valid = int((~np.isnan(expected[0, r0:r1, c0:c1])).sum())
    assert (got[0, r0:r1, c0:c1] > threshold).sum() >= 0.8 * box_valid, "the 2020 box changed (random 8-D turns)"
    assert rows[0]["changed_pixels"] <= box_valid + 10
    assert rows[1]["changed_pixels"] < 10, "2020 -> 2021 is small noise only"
    summary = traj.summary()
    any_valid = (~np.isnan(expected)).any(axis=0)
    ever = (np.where(np.isnan(got), -1, got) > threshold).any(axis=0)
    assert summary["valid_pixels"] == int(any_valid.sum())
    assert summary["changed_pixels"] == int(ever.sum())
    assert summary["changed_m2"] == pytest.approx(ever.sum() * 100.0)


def test_the_automatic_threshold_is_otsu_over_all_pairs(four_years, tmp_path):
    rasters, (expected, _) = four_years
    _, traj = run_series(rasters, tmp_path, anomaly=False)
    values = expected[~np.isnan(expected)]
    threshold = traj.threshold
    # exhaustive Otsu on the distances themselves: the chosen split is (to the bin width) the best one
    best, best_t = -1.0, None
    for t in np.unique(np.round(values, 3)):
        low, high = values[values <= t], values[values > t]
        if len(low) and len(high):
            between = len(low) * len(high) * (low.mean() - high.mean()) ** 2
            if between > best:
                best, best_t = between, t
    assert abs(threshold - best_t) < 0.01
    assert np.histogram(values, bins=traj.edges)[0].sum() == traj.counts.sum()


def test_a_fixed_threshold_counts_above_it(four_years, tmp_path):
    rasters, (expected, _) = four_years
    _, traj = run_series(rasters, tmp_path, threshold=0.002, anomaly=False)
    for pair, row in enumerate(traj.pair_summaries()):
        valid = ~np.isnan(expected[pair])
        assert row["changed_pixels"] == int((expected[pair][valid] > 0.002).sum())


def test_years_in_any_order_are_sorted_and_duplicates_refused():
    order, labels, by_year = trajectory.year_order([2021, 2019, 2020], ["c", "a", "b"])
    assert (order, labels, by_year) == ([1, 2, 0], [2019, 2020, 2021], True)
    order, labels, by_year = trajectory.year_order([2021, None, 2020], ["c", "a", "b"])
    assert (order, labels, by_year) == ([0, 1, 2], [1, 2, 3], False)
    with pytest.raises(GeoEmbedError) as caught:
        trajectory.year_order([2020, 2021, 2020], ["a.tif", "b.tif", "c.tif"])
    message = assert_one_line(caught.value)
    assert "2020" in message and "a.tif" in message and "c.tif" in message and "one raster per year" in message


def test_other_bands_or_grids_or_one_year_are_refused(tmp_path):
    rasters = series(20, 10, bands=4)
    other = random_raster(20, 10, bands=3)
    with pytest.raises(GeoEmbedError) as caught:
        trajectory.Trajectory([rasters[0], other], [1, 2], str(tmp_path / "s.npy"))
    assert "INPUT 2" in assert_one_line(caught.value)
    shifted = random_raster(20, 10, bands=4, x0=600000.0)
    with pytest.raises(GeoEmbedError):
        trajectory.Trajectory([rasters[0], shifted], [1, 2], str(tmp_path / "s.npy"))
    with pytest.raises(GeoEmbedError) as caught:
        trajectory.Trajectory(rasters[:1], [1], str(tmp_path / "s.npy"))
    assert "two or more" in assert_one_line(caught.value)


def test_cancel_stops_pass_one_and_reads_a_block_of_every_year_at_once(tmp_path):
    rasters = series(40, 40, bands=4)
    traj = trajectory.Trajectory(rasters, YEARS, str(tmp_path / "s.npy"), block=8)
    with pytest.raises(Cancelled):
        traj.compute(is_cancelled=cancel_after(3))
    traj.close()
    assert not os.path.exists(tmp_path / "s.npy")
    assert all(raster.closed for raster in rasters)
    reads = [raster.reads for raster in rasters]
    assert all(r[:3] == reads[0][:3] for r in reads), "every year reads the same windows in the same order"
    assert max(len(r) for r in reads) <= 5, "no year is read ahead of the others by more than one block"


def test_block_side_bounds_one_block_of_every_year():
    assert trajectory.block_side(4, 64) == 384
    assert trajectory.block_side(2, 8) == 512
    assert trajectory.block_side(30, 768) == trajectory.MIN_BLOCK
    for years, bands in ((4, 64), (9, 64), (12, 128)):
        side = trajectory.block_side(years, bands)
        assert side % 64 == 0 and (side == 64 or years * bands * side * side * 4 <= trajectory.BLOCK_BUDGET)


def test_memory_of_pass_one_stays_bounded_with_many_years(tmp_path):
    """A block of every year, not every year whole: the arrays pass 1 holds scale with the block, not the raster."""
    rasters = series(130, 70, bands=4)
    traj = trajectory.Trajectory(rasters, YEARS, str(tmp_path / "s.npy"), block=32)
    traj.compute()
    sizes = {(w.width, w.height) for r in rasters for w in r.reads}
    assert max(w * h for w, h in sizes) <= 32 * 32
    traj.close()


def test_geographic_grid_counts_area_per_row(tmp_path):
    grid = make_grid(6, 30, res_x=0.01, x0=5.0, y0=60.0, crs="EPSG:4326")
    rng = np.random.default_rng(1)
    values = rng.normal(size=(3, 30, 6))
    later = -values  # everything changes (distance near 2)
    rasters = [MemRaster(values, np.ones((30, 6), bool), grid), MemRaster(later, np.ones((30, 6), bool), grid)]
    _, traj = run_series(rasters, tmp_path, labels=[2020, 2021], threshold=1.0, anomaly=False)
    row = traj.pair_summaries()[0]
    from pyproj import Geod

    geod = Geod(ellps="WGS84")
    expected = 0.0
    for r in range(30):
        top = 60.0 - r * 0.01
        area, _ = geod.polygon_area_perimeter([5.0, 5.01, 5.01, 5.0], [top, top, top - 0.01, top - 0.01])
        expected += 6 * abs(area)
    assert row["changed_pixels"] == 180
    assert row["changed_m2"] == pytest.approx(expected, rel=1e-4)
