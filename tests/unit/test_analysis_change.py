"""change: cosine distance, Otsu threshold, mask and changed area against brute force (pixel loops, exhaustive searches)."""

import math
import os

import numpy as np
import pytest
from osgeo import gdal
from pyproj import Geod

from geoembed.analysis import change
from geoembed.analysis.resample import nearest
from geoembed.loaders.errors import Cancelled, GeoEmbedError
from geoembed.loaders.model import NODATA
from geoembed.loaders.raster.grid import Grid
from geoembed.loaders.raster.writer import OutputSpec, write_rasters
from tests.unit.helpers import assert_one_line, cancel_after
from tests.unit.test_analysis_memraster import MemRaster, make_grid, random_raster


def brute_distance(first, second):
    """(rows, cols) float64 1 - cos per pixel with a Python loop; NaN where either is invalid or a zero vector."""
    height, width = first.valid.shape
    out = np.full((height, width), np.nan)
    for row in range(height):
        for col in range(width):
            if not (first.valid[row, col] and second.valid[row, col]):
                continue
            a = first.values[:, row, col].astype(np.float64)
            b = second.values[:, row, col].astype(np.float64)
            na, nb = math.sqrt(sum(v * v for v in a)), math.sqrt(sum(v * v for v in b))
            if na == 0 or nb == 0:
                continue
            out[row, col] = 1.0 - sum(x * y for x, y in zip(a, b)) / (na * nb)
    return out


def changed_pair(width=70, height=50, bands=8, seed=3):
    """Two rasters: the second is the first plus small noise, with a block of turned vectors (the change),
    nodata holes in each and one all-zero vector in the second."""
    first = random_raster(width, height, bands=bands, seed=seed, holes=0.05)
    rng = np.random.default_rng(seed + 1)
    values = first.values + 0.05 * rng.normal(size=first.values.shape).astype(np.float32)
    values[:, 5:20, 40:60] = 0.3 * rng.normal(size=(bands, 15, 20)) - first.values[:, 5:20, 40:60]
    values[:, 30, 10] = 0.0
    valid = rng.random((height, width)) >= 0.05
    second = MemRaster(values, valid, first.grid)
    return first, second


def run_change(first, second, tmp_path, threshold=None, block=16):
    """Both passes through write_rasters (as the provider does): (distance, mask, valid, ChangeDistances)."""
    scratch = str(tmp_path / "scratch.npy")
    distances = change.ChangeDistances(first, second, scratch, block=block)
    distances.compute()
    distances.threshold = distances.automatic_threshold()[0] if threshold is None else threshold
    specs = [
        OutputSpec(str(tmp_path / "distance.tif"), ("d",)),
        OutputSpec(str(tmp_path / "mask.tif"), ("m",), gdal.GDT_Byte, change.MASK_NODATA),
    ]
    write_rasters(first.grid, specs, distances.produce, block=block)
    distance = gdal.Open(specs[0].path).ReadAsArray().astype(np.float64)
    mask = gdal.Open(specs[1].path).ReadAsArray()
    distances.close()
    assert not os.path.exists(scratch), "the scratch file must be removed"
    return distance, mask, distances


def test_cosine_distance_equals_a_pixel_loop():
    first, second = changed_pair()
    distance, valid = change.cosine_distance(first.values, first.valid, second.values, second.valid)
    expected = brute_distance(first, second)
    assert np.array_equal(valid, ~np.isnan(expected))
    assert not valid[30, 10], "an all-zero vector has no direction"
    assert distance.dtype == np.float32
    assert np.abs(distance[valid] - expected[valid]).max() < 1e-6


def test_identical_and_opposite_vectors_give_0_and_2():
    grid = make_grid(2, 1)
    values = np.array([[[1.0, 2.0]], [[3.0, -1.0]]], dtype=np.float32)
    a = MemRaster(values, np.ones((1, 2), bool), grid)
    b = MemRaster(values * np.array([2.0, -1.0], dtype=np.float32), np.ones((1, 2), bool), grid)
    distance, valid = change.cosine_distance(a.values, a.valid, b.values, b.valid)
    assert valid.all()
    assert distance[0, 0] == pytest.approx(0.0, abs=1e-7) and distance[0, 1] == pytest.approx(2.0, abs=1e-7)


@pytest.mark.parametrize("threshold", [None, 0.2, "median"])
def test_distance_map_and_mask_equal_brute_force(tmp_path, threshold):
    first, second = changed_pair()
    expected = brute_distance(first, second)
    if threshold == "median":  # half the unchanged pixels on each side: the comparison must be exact
        threshold = float(np.nanmedian(expected))
    distance, mask, distances = run_change(first, second, tmp_path, threshold)
    ok = ~np.isnan(expected)
    assert np.array_equal(distance == NODATA, ~ok)
    assert np.abs(distance[ok] - expected[ok]).max() < 1e-6
    used = distances.threshold
    assert np.array_equal(mask == change.MASK_NODATA, ~ok)
    assert np.array_equal(mask[ok] == 1, expected[ok] > used)
    assert set(np.unique(mask)) <= {0, 1, change.MASK_NODATA}
    # the planted change is found and the rest is not
    block = np.zeros(ok.shape, bool)
    block[5:20, 40:60] = True
    assert (mask[block & ok] == 1).mean() > 0.95
    if used > 0.1:
        assert (mask[~block & ok] == 0).mean() > 0.95
    summary = distances.summary()
    assert summary["valid_pixels"] == int(ok.sum())
    assert summary["changed_pixels"] == int((expected[ok] > used).sum())
    assert summary["changed_m2"] == pytest.approx(summary["changed_pixels"] * 100.0)
    assert summary["changed_fraction"] == pytest.approx(summary["changed_pixels"] / summary["valid_pixels"])


def test_otsu_equals_an_exhaustive_search_over_the_histogram():
    rng = np.random.default_rng(5)
    counts = np.histogram(np.concatenate([rng.normal(0.1, 0.03, 4000), rng.normal(0.6, 0.1, 1000)]), 60, (0, 1))[0]
    edges = np.linspace(0, 1, 61)
    centres = (edges[:-1] + edges[1:]) / 2
    best, best_k = -1.0, None
    for k in range(1, 60):  # class 0 = bins < k
        w0, w1 = counts[:k].sum(), counts[k:].sum()
        if w0 == 0 or w1 == 0:
            continue
        m0 = (counts[:k] * centres[:k]).sum() / w0
        m1 = (counts[k:] * centres[k:]).sum() / w1
        between = w0 * w1 * (m0 - m1) ** 2
        if between > best:
            best, best_k = between, k
    threshold, separability = change.otsu_threshold(counts, edges)
    assert threshold == pytest.approx(edges[best_k])
    assert 0.5 < separability <= 1.0


def test_otsu_on_raw_distances_matches_a_brute_force_search_within_a_bin():
    """The histogram threshold against the best split of the raw values themselves."""
    rng = np.random.default_rng(11)
    values = np.clip(np.concatenate([rng.gamma(4, 0.01, 20000), rng.normal(0.45, 0.06, 3000)]), 0, 2)
    counts = np.histogram(values, change.HISTOGRAM_BINS, (0, change.MAX_DISTANCE))[0]
    threshold, _ = change.otsu_threshold(counts, np.linspace(0, change.MAX_DISTANCE, change.HISTOGRAM_BINS + 1))
    ordered = np.sort(values)

    def between(t):
        low, high = ordered[ordered <= t], ordered[ordered > t]
        return len(low) * len(high) * (low.mean() - high.mean()) ** 2 / len(ordered) ** 2

    candidates = np.linspace(ordered[0], ordered[-1], 4001)[1:-1]
    scores = [between(t) for t in candidates]
    best = candidates[int(np.argmax(scores))]
    width = change.MAX_DISTANCE / change.HISTOGRAM_BINS
    assert abs(threshold - best) < 3 * width + (candidates[1] - candidates[0])
    assert between(threshold) >= 0.9999 * max(scores)


def test_otsu_refuses_a_constant_histogram():
    counts = np.zeros(10)
    counts[3] = 50
    with pytest.raises(GeoEmbedError) as info:
        change.otsu_threshold(counts, np.linspace(0, 1, 11))
    assert "THRESHOLD" in assert_one_line(info.value)


def test_second_raster_on_another_grid_is_taken_with_nearest(tmp_path):
    """INPUT_2 one pixel east of INPUT: through nearest() each INPUT pixel meets the INPUT_2 pixel under its centre."""
    first = random_raster(40, 30, bands=5, seed=8, holes=0.0, box=False)
    shifted = make_grid(40, 30, x0=first.grid.x0 + 10.0)
    values = np.roll(first.values, -1, axis=2) + np.float32(0.01)
    second = MemRaster(values, np.ones((30, 40), bool), shifted)
    assert not change.same_grid(first.grid, second.grid)
    with pytest.raises(GeoEmbedError):
        change.ChangeDistances(first, second, str(tmp_path / "s.npy"))
    moved = nearest(second, first.grid)
    distance, _, _ = run_change(first, moved, tmp_path, threshold=0.5)
    # INPUT column c meets INPUT_2 column c - 1, which holds INPUT's column c (+ 0.01): near zero; column 0 is outside.
    assert (distance[:, 0] == NODATA).all()
    a = first.values[:, :, 1:].astype(np.float64)
    b = a + 0.01
    expected = 1 - (a * b).sum(0) / np.linalg.norm(a, axis=0) / np.linalg.norm(b, axis=0)
    assert np.abs(distance[:, 1:] - expected).max() < 1e-6


def test_rasters_with_other_bands_are_refused_in_one_line(tmp_path):
    first = random_raster(10, 10, bands=6)
    other = random_raster(10, 10, bands=4)
    with pytest.raises(GeoEmbedError) as info:
        change.ChangeDistances(first, other, str(tmp_path / "s.npy"))
    message = assert_one_line(info.value)
    assert "6 bands" in message and "4" in message and "INPUT_2" in message
    renamed = MemRaster(first.values, first.valid, first.grid, band_names=[f"B{i}" for i in range(6)])
    with pytest.raises(GeoEmbedError) as info:
        change.check_same_bands(first, renamed)
    assert "A00..A05" in assert_one_line(info.value) and "B0..B5" in str(info.value)


def test_same_grid_and_overlap():
    grid = make_grid(10, 10)
    assert change.same_grid(grid, make_grid(10, 10))
    assert not change.same_grid(grid, make_grid(10, 11))
    assert not change.same_grid(grid, make_grid(10, 10, res_x=20.0))
    assert change.overlaps(grid, make_grid(10, 10, x0=grid.x0 + 50))
    assert not change.overlaps(grid, make_grid(10, 10, x0=grid.x0 + 100))


def test_cancel_during_pass_one_removes_the_scratch_file(tmp_path):
    first, second = changed_pair()
    scratch = tmp_path / "scratch.npy"
    distances = change.ChangeDistances(first, second, str(scratch), block=16)
    with pytest.raises(Cancelled):
        distances.compute(is_cancelled=cancel_after(2))
    distances.close()
    assert list(tmp_path.iterdir()) == []


def test_areas_in_a_projected_crs_in_feet():
    grid = Grid("EPSG:2263", 1000.0, 2000.0, 30.0, 30.0, 4, 3)  # NAD83 / New York Long Island (ftUS)
    foot = 1200.0 / 3937.0
    assert change.pixel_areas_m2(grid) == pytest.approx(np.full(3, (30 * foot) ** 2))


def test_areas_in_a_geographic_crs_follow_the_ellipsoid_row_by_row():
    grid = Grid("EPSG:4326", 10.0, 61.0, 0.01, 0.5, 3, 4)
    geod = Geod(ellps="WGS84")
    expected = []
    for row in range(4):
        top = 61.0 - row * 0.5
        lons, lats = [10.0, 10.01, 10.01, 10.0], [top, top, top - 0.5, top - 0.5]
        expected.append(abs(geod.polygon_area_perimeter(lons, lats)[0]))
    areas = change.pixel_areas_m2(grid)
    assert areas == pytest.approx(expected, rel=1e-4)
    assert areas[0] < areas[-1], "rows nearer the pole are smaller"


def test_summary_on_a_geographic_grid_weights_rows_by_their_area(tmp_path):
    grid = Grid("EPSG:4326", 10.0, 70.0, 0.5, 10.0, 4, 5)
    rng = np.random.default_rng(2)
    values = rng.normal(size=(3, 5, 4)).astype(np.float32)
    after = values.copy()
    after[:, 0, :] *= -1  # the northern row changes completely
    first = MemRaster(values, np.ones((5, 4), bool), grid)
    second = MemRaster(after, np.ones((5, 4), bool), grid)
    _, mask, distances = run_change(first, second, tmp_path, threshold=1.0)
    assert (mask[0] == 1).all() and (mask[1:] == 0).all()
    summary = distances.summary()
    areas = change.pixel_areas_m2(grid)
    assert summary["changed_pixels"] == 4
    assert summary["changed_m2"] == pytest.approx(4 * areas[0])
    assert summary["changed_fraction"] == pytest.approx(areas[0] / areas.sum())
    assert summary["changed_fraction"] < 4 / 20, "the northern row is the smallest"


def test_reads_both_rasters_once_per_block(tmp_path):
    first, second = changed_pair()
    run_change(first, second, tmp_path, threshold=0.3, block=16)
    expected = list(first.grid.blocks(16))
    assert first.reads == expected and second.reads == expected


def test_area_text():
    assert change.area_text(12_345.0) == "1.23 ha (0.0123 km²)"
