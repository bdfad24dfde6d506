"""transitions: the from -> to matrix and map against brute force (np.unique over whole arrays, pixel loops)."""

import numpy as np
import pytest
from osgeo import gdal

from geoembed.analysis import transitions
from geoembed.analysis.change import pixel_areas_m2
from geoembed.analysis.resample import nearest
from geoembed.loaders.errors import Cancelled, GeoEmbedError
from geoembed.loaders.raster.writer import OutputSpec, write_rasters
from tests.unit.helpers import assert_one_line, cancel_after
from tests.unit.test_analysis_memraster import MemRaster, make_grid

NAMES = {1: "forest", 2: "crop", 3: "water", 4: "urban"}


def class_pair(width=70, height=45, seed=5, grid=None):
    """Two class maps (values 1..4, holes in each), the second a changed copy of the first."""
    rng = np.random.default_rng(seed)
    grid = grid or make_grid(width, height)
    before = rng.integers(1, 5, size=(grid.height, grid.width))
    after = before.copy()
    flip = rng.random(before.shape) < 0.3
    after[flip] = rng.integers(1, 5, size=int(flip.sum()))
    valid_a = rng.random(before.shape) >= 0.08
    valid_b = rng.random(before.shape) >= 0.08
    return MemRaster(before[None], valid_a, grid, ("class",)), MemRaster(after[None], valid_b, grid, ("class",))


def counted(first, second, names_a=NAMES, names_b=NAMES, block=16):
    result = transitions.Transitions(first, second, names_a, names_b, block=block)
    result.count()
    return result


def brute_matrix(first, second, classes):
    """(pixels, m²) matrices by np.unique over the whole arrays, and the per-pixel area from a row loop."""
    valid = first.valid & second.valid
    areas = pixel_areas_m2(first.grid)
    pixel_area = np.repeat(areas[:, None], first.grid.width, axis=1)
    pairs, counts = np.unique(np.stack([first.values[0][valid], second.values[0][valid]]), axis=1, return_counts=True)
    n = len(classes)
    pixels, m2 = np.zeros((n, n), dtype=np.int64), np.zeros((n, n))
    index = {value: i for i, value in enumerate(classes)}
    for (a, b), count in zip(pairs.T, counts):
        pixels[index[int(a)], index[int(b)]] = count
        m2[index[int(a)], index[int(b)]] = pixel_area[valid & (first.values[0] == a) & (second.values[0] == b)].sum()
    return pixels, m2


def test_matrix_equals_np_unique_over_the_whole_maps():
    first, second = class_pair()
    result = counted(first, second)
    assert result.class_names == ["forest", "crop", "water", "urban"]
    pixels, m2 = brute_matrix(first, second, [1, 2, 3, 4])
    np.testing.assert_array_equal(result.pixels, pixels)
    np.testing.assert_allclose(result.m2, m2, rtol=1e-12)
    assert result.pixels.sum() == result.valid_pixels == int((first.valid & second.valid).sum())


@pytest.mark.parametrize("crs, res", [("EPSG:32631", 10.0), ("EPSG:4326", 0.01)], ids=["utm", "lonlat"])
def test_areas_in_the_matrix_sum_to_the_valid_area(crs, res):
    lonlat = crs == "EPSG:4326"
    grid = make_grid(60, 40, res_x=res, x0=2.0 if lonlat else 500000.0, y0=60.0 if lonlat else 5e6, crs=crs)
    first, second = class_pair(grid=grid)
    result = counted(first, second, block=13)
    valid = first.valid & second.valid
    expected = float((valid.sum(axis=1) * pixel_areas_m2(grid)).sum())
    assert result.m2.sum() == pytest.approx(expected, rel=1e-12)
    assert result.valid_m2 == pytest.approx(expected, rel=1e-12)
    summary = result.summary()
    assert summary["valid_m2"] == pytest.approx(expected, rel=1e-12)
    if lonlat:  # rows nearer the pole are smaller: areas are not a pixel count times one area
        assert np.ptp(pixel_areas_m2(grid)) > 0


def test_summary_gains_losses_net_and_changed_share():
    first, second = class_pair()
    result = counted(first, second)
    s = result.summary()
    m2 = result.m2
    for i in range(4):
        gains = sum(m2[j, i] for j in range(4) if j != i)
        losses = sum(m2[i, j] for j in range(4) if j != i)
        assert s["gains_m2"][i] == pytest.approx(gains)
        assert s["losses_m2"][i] == pytest.approx(losses)
        assert s["net_m2"][i] == pytest.approx(gains - losses)
    valid = first.valid & second.valid
    changed = int((valid & (first.values[0] != second.values[0])).sum())
    assert s["changed_pixels"] == changed
    assert s["changed_m2"] == pytest.approx(changed * 100.0)
    assert s["changed_fraction"] == pytest.approx(changed / valid.sum())


def test_map_codes_index_the_sorted_observed_pairs(tmp_path):
    first, second = class_pair()
    result = counted(first, second)
    path = str(tmp_path / "t.tif")
    write_rasters(first.grid, [OutputSpec(path, ("t",), gdal.GDT_Byte, 0)], result.produce, block=16)
    got = gdal.Open(path).ReadAsArray()
    valid = first.valid & second.valid
    assert (got[~valid] == 0).all()
    observed = sorted({(int(a) - 1, int(b) - 1) for a, b in zip(first.values[0][valid], second.values[0][valid])})
    assert result.pairs == observed
    for row, col in zip(*np.nonzero(valid)):  # pixel loop
        pair = (int(first.values[0, row, col]) - 1, int(second.values[0, row, col]) - 1)
        assert got[row, col] == observed.index(pair) + 1
    assert result.pair_label(observed.index((0, 1)) + 1) == "forest → crop"
    assert result.pair_label(observed.index((2, 2)) + 1) == "water (unchanged)"


def test_classes_are_matched_by_name_and_unnamed_values_by_value():
    grid = make_grid(4, 1)
    before = MemRaster(np.array([[[1, 2, 7, 7]]]), np.ones((1, 4), bool), grid, ("c",))
    after = MemRaster(np.array([[[2, 1, 7, 5]]]), np.ones((1, 4), bool), grid, ("c",))
    # the second map's model lists its classes in another order: value 1 is crop there
    result = counted(before, after, {1: "forest", 2: "crop"}, {1: "crop", 2: "forest", 3: "water"})
    assert result.class_names == ["forest", "crop", "7", "water", "5"]
    assert result.pixels[0, 0] == 1 and result.pixels[1, 1] == 1  # forest stayed forest, crop stayed crop
    assert result.pixels[2, 2] == 1 and result.pixels[2, 4] == 1
    assert result.summary()["changed_pixels"] == 1


def test_second_map_on_another_grid_is_taken_with_nearest():
    first, _ = class_pair(width=40, height=30)
    coarse = make_grid(20, 15, res_x=20.0)
    rng = np.random.default_rng(2)
    values = rng.integers(1, 5, size=(1, 15, 20))
    second = MemRaster(values, np.ones((15, 20), bool), coarse, ("class",))
    result = counted(first, nearest(second, first.grid))
    expected_after = np.repeat(np.repeat(values[0], 2, axis=0), 2, axis=1)
    placed = MemRaster(expected_after[None], np.ones((30, 40), bool), first.grid, ("class",))
    pixels, _ = brute_matrix(first, placed, [1, 2, 3, 4])
    np.testing.assert_array_equal(result.pixels, pixels)


def test_values_outside_a_class_map_are_refused_in_one_line():
    grid = make_grid(3, 1)
    first = MemRaster(np.array([[[1, 2, 70000]]]), np.ones((1, 3), bool), grid, ("c",))
    with pytest.raises(GeoEmbedError) as caught:
        counted(first, first)
    message = assert_one_line(caught.value)
    assert "70000" in message and "0..65535" in message


def test_cancel_stops_pass_one():
    first, second = class_pair()
    with pytest.raises(Cancelled):
        transitions.Transitions(first, second, NAMES, NAMES, block=16).count(is_cancelled=cancel_after(2))


def test_report_lists_the_matrix_in_hectares_and_per_class_net():
    first, second = class_pair()
    result = counted(first, second)
    page = transitions.report_html(result, "2023.tif (2023)", "2024.tif (2024)")
    assert "forest" in page and "urban" in page and "2024.tif (2024)" in page
    assert f"{result.m2[0, 1] / 1e4:,.2f}" in page
    assert f"{100 * result.summary()['changed_fraction']:.2f} %" in page
