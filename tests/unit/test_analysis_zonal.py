"""analysis.zonal.zonal_means with loaders.raster.rasterize.PolygonMask, against brute-force numpy.

Expectations: every pixel centre tested against the polygon with a winding-number test (independent of GDAL's
rasteriser), or, for ALL_TOUCHED, every pixel's square tested for intersection with the polygon by OGR; then plain
numpy means and cosines over the selected pixels.
"""

import numpy as np
import pytest
from osgeo import ogr

from geoembed.analysis.zonal import ZoneSums, zonal_means
from geoembed.loaders.catalog import has_unit_vectors
from geoembed.loaders.errors import Cancelled
from geoembed.loaders.raster.rasterize import PolygonMask
from tests.support.polygons import inside_polygons
from tests.unit.test_analysis_memraster import MemRaster, make_grid, random_raster

TOLERANCE = 1e-9


# --- polygons in pixel coordinates, and the brute force ------------------------------------------


def to_map(grid, col_rows):
    """Pixel-space (col, row) floats to map coordinates."""
    return [(grid.x0 + c * grid.res_x, grid.y0 - r * grid.res_y) for c, r in col_rows]


def closed(points):
    return list(points) + [points[0]]


def star(cx, cy, r_out, r_in, n=7, phase=0.1):
    angles = phase + np.arange(2 * n) * np.pi / n
    radii = np.where(np.arange(2 * n) % 2 == 0, r_out, r_in)
    return [(cx + r * np.cos(a), cy + r * np.sin(a)) for r, a in zip(radii, angles)]


def wkt(polygons):
    """polygons: [[outer ring, hole, ...], ...] of (col, row) lists (not closed) -> (MULTI)POLYGON WKT in pixel space."""
    rings = [["(" + ", ".join(f"{float(x)!r} {float(y)!r}" for x, y in closed(ring)) + ")" for ring in p] for p in polygons]
    parts = ["(" + ", ".join(polygon) + ")" for polygon in rings]
    return f"MULTIPOLYGON({', '.join(parts)})" if len(parts) > 1 else f"POLYGON{parts[0]}"


def zone(grid, polygons, all_touched=False):
    """A PolygonMask of polygons given in pixel coordinates."""
    mapped = [[to_map(grid, ring) for ring in polygon] for polygon in polygons]
    geometry = ogr.CreateGeometryFromWkt(wkt(mapped))
    return PolygonMask(geometry.ExportToWkb(), all_touched)


def centres_inside(grid, polygons):
    """(rows, cols) bool: pixel centres inside any polygon (outer ring minus its holes), in pixel coordinates."""
    cols, rows = np.meshgrid(np.arange(grid.width) + 0.5, np.arange(grid.height) + 0.5)
    return inside_polygons(cols, rows, polygons)


def squares_touched(grid, polygons):
    """(rows, cols) bool: pixels whose square meets the polygon (OGR's Intersects, pixel by pixel)."""
    geometry = ogr.CreateGeometryFromWkt(wkt(polygons))
    out = np.zeros((grid.height, grid.width), dtype=bool)
    for row in range(grid.height):
        for col in range(grid.width):
            square = ogr.CreateGeometryFromWkt(wkt([[[(col, row), (col + 1, row), (col + 1, row + 1), (col, row + 1)]]]))
            out[row, col] = geometry.Intersects(square)
    return out


def brute_zone(raster, selected, normalise):
    """(mean, spread, pixels) of the valid selected pixels, plain numpy in float64."""
    take = selected & raster.valid
    vectors = raster.values[:, take].T.astype(np.float64)
    if len(vectors) == 0:
        return None, None, 0
    mean = vectors.mean(axis=0)
    direction = mean / np.linalg.norm(mean)
    cos = vectors @ direction / np.linalg.norm(vectors, axis=1)
    return (direction if normalise else mean), float(np.mean(1.0 - cos)), len(vectors)


def check(raster, shapes, result, normalise=False, all_touched=False):
    for index, polygons in enumerate(shapes):
        selected = squares_touched(raster.grid, polygons) if all_touched else centres_inside(raster.grid, polygons)
        mean, spread, pixels = brute_zone(raster, selected, normalise)
        assert result.pixels[index] == pixels, f"zone {index}"
        if pixels == 0:
            assert np.isnan(result.means[index]).all() and np.isnan(result.spread[index]), f"zone {index}"
        else:
            np.testing.assert_allclose(result.means[index], mean, rtol=0, atol=TOLERANCE, err_msg=f"zone {index}")
            assert result.spread[index] == pytest.approx(spread, abs=TOLERANCE), f"zone {index}"


# --- the shapes --------------------------------------------------------------------------------

HOLED = [
    [(3.3, 2.7), (55.1, 6.2), (48.6, 44.9), (20.2, 47.3), (5.7, 30.1)],
    [(20.4, 15.2), (35.3, 18.9), (30.6, 31.7), (18.1, 27.6)],  # a hole
]
STAR = [star(40.3, 30.2, 14.6, 6.1)]
OVERLAPPING = [[(30.2, 20.3), (58.7, 21.1), (57.4, 52.6), (31.9, 50.8)]]  # overlaps HOLED and STAR
MULTI = [STAR[0:1], [[(1.2, 50.3), (9.8, 50.6), (8.9, 58.1), (1.7, 57.2)]], [[(60.3, 1.4), (68.8, 2.2), (67.1, 8.9)]]]
TINY = [[(12.1, 40.1), (12.4, 40.15), (12.2, 40.4)]]  # inside one pixel, holding no centre
OUTSIDE = [[(80.2, 70.1), (90.3, 70.2), (85.1, 80.4)]]  # off the raster
CROSSING_EDGE = [[(62.4, 50.3), (75.2, 49.6), (74.3, 66.1), (61.6, 65.2)]]  # partly off the raster

SHAPES = [[HOLED], [STAR[0]], [OVERLAPPING[0]], MULTI, [TINY[0]], [OUTSIDE[0]], [CROSSING_EDGE[0]]]
SHAPES = [[p if isinstance(p[0], list) else [p] for p in shape] for shape in SHAPES]  # [[outer, holes...], ...]


@pytest.fixture(scope="module")
def raster():
    raster = random_raster(70, 60, bands=5, seed=3)
    assert (~raster.valid).sum() > 200
    return raster


def zones_for(raster, all_touched=False):
    return [zone(raster.grid, polygons, all_touched) for polygons in SHAPES]


@pytest.mark.parametrize("normalise", [False, True])
def test_means_spread_and_counts_equal_numpy(raster, normalise):
    result = zonal_means(raster, zones_for(raster), normalise)
    check(raster, SHAPES, result, normalise)
    pixels = dict(zip(["holed", "star", "overlapping", "multi", "tiny", "outside", "crossing"], result.pixels))
    assert pixels["holed"] > 500 and pixels["star"] > 100 and pixels["overlapping"] > 500 and pixels["crossing"] > 50
    assert pixels["tiny"] == 0 and pixels["outside"] == 0
    if normalise:
        np.testing.assert_allclose(np.linalg.norm(result.means[result.pixels > 0], axis=1), 1.0)


def test_the_set_up_has_overlaps_nodata_and_a_hole(raster):
    holed = centres_inside(raster.grid, SHAPES[0])
    star_, overlapping = centres_inside(raster.grid, SHAPES[1]), centres_inside(raster.grid, SHAPES[2])
    without_hole = centres_inside(raster.grid, [[HOLED[0]]])
    assert (without_hole & ~holed).sum() > 100, "the hole matters"
    assert (holed & overlapping).sum() > 50 and (star_ & overlapping).sum() > 50, "zones overlap"
    assert (holed & ~raster.valid).sum() > 20, "a zone crosses nodata"


def test_all_touched_takes_every_pixel_a_polygon_touches(raster):
    result = zonal_means(raster, zones_for(raster, all_touched=True))
    check(raster, SHAPES, result, all_touched=True)
    assert result.pixels[4] == (1 if raster.valid[40, 12] else 0), "the tiny polygon touches one pixel"
    centred = zonal_means(raster, zones_for(raster))
    assert (result.pixels >= centred.pixels).all() and (result.pixels[:4] > centred.pixels[:4]).all()


def test_tiny_polygon_on_a_valid_pixel_counts_only_with_all_touched():
    raster = random_raster(20, 20, bands=3, seed=5, holes=0.0, box=False)
    tiny = [[[(7.6, 9.6), (7.9, 9.65), (7.7, 9.9)]]]
    assert zonal_means(raster, [zone(raster.grid, tiny)]).pixels[0] == 0
    result = zonal_means(raster, [zone(raster.grid, tiny, all_touched=True)])
    assert result.pixels[0] == 1 and result.spread[0] == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(result.means[0], raster.values[:, 9, 7])


def test_a_large_polygon_is_read_block_by_block_with_the_same_result():
    raster = random_raster(150, 130, bands=4, seed=7)
    big = [[[(0.4, 0.3), (149.6, 2.2), (147.3, 128.7), (1.3, 127.9)], [(60.2, 50.3), (90.6, 51.1), (75.1, 80.2)]]]
    whole = zonal_means(raster, [zone(raster.grid, big)])
    raster.reads.clear()
    blocked = zonal_means(raster, [zone(raster.grid, big)], block=32)
    assert len(raster.reads) > 16 and all(w.width <= 32 and w.height <= 32 for w in raster.reads)
    np.testing.assert_allclose(blocked.means, whole.means, rtol=0, atol=1e-12)
    assert blocked.pixels[0] == whole.pixels[0] and blocked.spread[0] == pytest.approx(whole.spread[0], abs=1e-12)
    check(raster, [big], blocked)


def test_a_multipolygon_reads_only_the_blocks_its_parts_meet():
    raster = random_raster(200, 200, bands=2, seed=8)
    corners = [[[(2.3, 2.4), (12.6, 2.2), (12.4, 12.7)]], [[(188.3, 187.4), (197.6, 188.2), (197.4, 198.7)]]]
    result = zonal_means(raster, [zone(raster.grid, corners)], block=20)
    assert len(raster.reads) == 2, raster.reads
    check(raster, [corners], result)


def test_zero_vectors_count_as_pixels_but_have_no_direction():
    grid = make_grid(4, 1)
    values = np.array([[[1.0, 0.0, 1.0, 0.0]], [[0.0, 0.0, 1.0, 0.0]]])
    raster = MemRaster(values, np.ones((1, 4), dtype=bool), grid)
    result = zonal_means(raster, [zone(grid, [[[(0.1, 0.1), (3.9, 0.1), (3.9, 0.9), (0.1, 0.9)]]])])
    assert result.pixels[0] == 4
    np.testing.assert_allclose(result.means[0], [0.5, 0.25])
    direction = np.array([2.0, 1.0]) / np.sqrt(5.0)
    expected = np.mean([1 - direction @ [1, 0], 1 - direction @ (np.array([1, 1]) / np.sqrt(2))])
    assert result.spread[0] == pytest.approx(expected, abs=1e-12)


def test_opposite_vectors_have_a_zero_mean_and_no_spread():
    sums = ZoneSums(2)
    sums.add(np.array([[1.0, -1.0], [2.0, -2.0]], dtype=np.float32))
    mean, spread = sums.result(normalise=True)
    assert np.allclose(mean, 0.0) and np.isnan(spread)


def test_sums_are_chunked_without_changing_them():
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(6, 1000)).astype(np.float32)
    one, many = ZoneSums(6), ZoneSums(6)
    one.add(vectors)
    many.add(vectors, chunk=7)
    assert one.count == many.count == 1000
    np.testing.assert_allclose(one.sums, many.sums, atol=1e-9)
    np.testing.assert_allclose(one.unit_sums, many.unit_sums, atol=1e-9)


def test_progress_per_zone_and_cancel(raster):
    fractions = []
    zonal_means(raster, zones_for(raster), progress=fractions.append)
    assert fractions == pytest.approx([(i + 1) / len(SHAPES) for i in range(len(SHAPES))])
    fractions.clear()
    zonal_means(raster, zones_for(raster), block=16, progress=fractions.append)
    assert len(fractions) > 2 * len(SHAPES) and fractions == sorted(fractions) and fractions[-1] == 1.0
    assert all(any(f == pytest.approx((i + 1) / len(SHAPES)) for f in fractions) for i in range(len(SHAPES)))
    with pytest.raises(Cancelled):
        zonal_means(raster, zones_for(raster), is_cancelled=lambda: True)


def test_only_aef_has_unit_vectors():
    assert has_unit_vectors("aef")
    assert not any(has_unit_vectors(p) for p in ("tessera", "clay", "generic", "unknown", "presto"))


def test_empty_geometry_has_no_window(raster):
    empty = PolygonMask(ogr.CreateGeometryFromWkt("POLYGON EMPTY").ExportToWkb())
    assert empty.blocks(raster.grid, 512) == []
