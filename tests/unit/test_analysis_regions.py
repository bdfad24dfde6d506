"""regions.polygon_pixels / feature_vectors against a brute-force point-in-polygon over every pixel centre."""

import numpy as np
import pytest

from geoembed.analysis.regions import feature_vectors, polygon_pixels
from tests.support.polygons import inside_polygons, pixel_centres
from tests.unit.test_analysis_memraster import random_raster


def brute_force_pixels(raster, polygons):
    """Set of (row, col) of valid pixels whose centre is inside any polygon (outer ring minus its holes)."""
    g = raster.grid
    inside = inside_polygons(*pixel_centres(g.x0, g.y0, g.res_x, g.res_y, g.width, g.height), polygons)
    rows, cols = np.nonzero(inside & raster.valid)
    return set(zip(rows.tolist(), cols.tolist())), inside


def closed(points):
    points = np.asarray(points, dtype=np.float64)
    return np.vstack([points, points[:1]])


def star(cx, cy, r_out, r_in, n=7, phase=0.1):
    angles = phase + np.arange(2 * n) * np.pi / n
    radii = np.where(np.arange(2 * n) % 2 == 0, r_out, r_in)
    return closed(np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1))


def to_map(raster, cols_rows):
    """Pixel-space (col, row) floats to map coordinates (so shapes are easy to place)."""
    g = raster.grid
    pts = np.asarray(cols_rows, dtype=np.float64)
    return np.stack([g.x0 + pts[:, 0] * g.res_x, g.y0 - pts[:, 1] * g.res_y], axis=1)


def check(raster, polygons, **kwargs):
    rings = [ring for polygon in polygons for ring in polygon]
    values, cols, rows = polygon_pixels(raster, rings, **kwargs)
    expected, _ = brute_force_pixels(raster, polygons)
    got = list(zip(rows.tolist(), cols.tolist()))
    assert len(got) == len(set(got)), "a pixel was returned twice"
    assert set(got) == expected
    assert values.shape == (len(got), raster.values.shape[0])
    np.testing.assert_array_equal(values, raster.values[:, rows, cols].T)
    return values, cols, rows, expected


def test_polygon_with_a_hole():
    raster = random_raster(60, 50, bands=4, seed=1)
    outer = closed(to_map(raster, [(3.3, 2.7), (55.1, 6.2), (48.6, 44.9), (20.2, 47.3), (5.7, 30.1)]))
    hole = closed(to_map(raster, [(20.4, 15.2), (35.3, 18.9), (30.6, 31.7), (18.1, 27.6)]))
    _, _, _, expected = check(raster, [[outer, hole]])
    _, inside_no_hole = brute_force_pixels(raster, [[outer]])
    _, inside_hole = brute_force_pixels(raster, [[hole]])
    assert inside_hole.sum() > 50 and (inside_no_hole & ~raster.valid).sum() > 20  # hole and nodata both matter
    assert len(expected) == (inside_no_hole & ~inside_hole & raster.valid).sum()


def test_multipolygon_as_several_rings():
    raster = random_raster(70, 55, bands=3, seed=2)
    first = star(*to_map(raster, [(18.3, 20.1)])[0], 150.0, 60.0)
    first_hole = closed(to_map(raster, [(16.2, 18.4), (20.7, 18.1), (19.9, 22.6)]))
    second = closed(to_map(raster, [(45.2, 30.3), (66.8, 33.1), (60.4, 52.9), (41.1, 47.7)]))
    check(raster, [[first, first_hole], [second]])


def test_polygon_reaching_past_the_raster_edges():
    raster = random_raster(30, 25, bands=2, seed=3)
    ring = closed(to_map(raster, [(-10.3, -8.1), (20.6, -3.3), (14.2, 12.8), (40.7, 35.2), (-5.5, 31.9)]))
    check(raster, [[ring]])


def test_polygon_spanning_several_internal_windows():
    # polygon_pixels works in 512 x 512 windows: a polygon wider than that must not lose or repeat pixels
    raster = random_raster(700, 560, bands=2, seed=4, holes=0.05)
    ring = star(*to_map(raster, [(351.3, 279.6)])[0], 3400.0, 1500.0, n=9)
    _, _, _, expected = check(raster, [[ring]])
    assert len(expected) > 50_000


def test_polygon_outside_or_between_centres_is_empty():
    raster = random_raster(20, 20, bands=3, seed=5)
    far = closed(to_map(raster, [(30.0, 30.0), (40.0, 30.0), (40.0, 40.0)]))
    values, cols, rows = polygon_pixels(raster, [far])
    assert values.shape == (0, 3) and len(cols) == 0 and len(rows) == 0
    tiny = closed(to_map(raster, [(2.6, 2.6), (2.9, 2.6), (2.9, 2.9), (2.6, 2.9)]))  # no pixel centre inside
    values, _, _ = polygon_pixels(raster, [tiny])
    assert values.shape == (0, 3)


def test_max_pixels_is_a_deterministic_subset():
    raster = random_raster(60, 50, bands=3, seed=6)
    ring = star(*to_map(raster, [(30.2, 25.1)])[0], 230.0, 110.0)
    full_values, full_cols, full_rows = polygon_pixels(raster, [ring])
    assert len(full_values) > 300
    values, cols, rows = polygon_pixels(raster, [ring], max_pixels=100, seed=3)
    again = polygon_pixels(raster, [ring], max_pixels=100, seed=3)
    assert len(values) == 100
    np.testing.assert_array_equal(values, again[0])
    np.testing.assert_array_equal(cols, again[1])
    np.testing.assert_array_equal(rows, again[2])
    picked = set(zip(rows.tolist(), cols.tolist()))
    assert len(picked) == 100 and picked <= set(zip(full_rows.tolist(), full_cols.tolist()))
    np.testing.assert_array_equal(values, raster.values[:, rows, cols].T)
    other = polygon_pixels(raster, [ring], max_pixels=100, seed=4)
    assert set(zip(other[2].tolist(), other[1].tolist())) != picked  # the seed matters
    everything = polygon_pixels(raster, [ring], max_pixels=len(full_values))
    np.testing.assert_array_equal(everything[0], full_values)


def test_feature_vectors_mixes_points_and_polygons():
    raster = random_raster(40, 30, bands=5, seed=7)
    g = raster.grid
    valid_r, valid_c = np.nonzero(raster.valid)
    hole_r, hole_c = np.nonzero(~raster.valid)

    def centre(row, col):
        return (g.x0 + (col + 0.5) * g.res_x + 1.3, g.y0 - (row + 0.5) * g.res_y - 2.1)

    poly = closed(to_map(raster, [(2.4, 2.2), (16.7, 3.1), (12.3, 14.8), (3.2, 11.6)]))
    poly_b = star(*to_map(raster, [(30.1, 20.3)])[0], 80.0, 35.0)
    nodata_only = closed(
        to_map(
            raster, [(hole_c[0] + 0.3, hole_r[0] + 0.3), (hole_c[0] + 0.7, hole_r[0] + 0.3), (hole_c[0] + 0.7, hole_r[0] + 0.7)]
        )
    )
    outside = closed(to_map(raster, [(-20.0, -20.0), (-10.0, -20.0), (-10.0, -10.0)]))
    features = [
        ("point", centre(valid_r[5], valid_c[5])),
        ("polygon", [poly]),
        ("point", centre(hole_r[3], hole_c[3])),  # on nodata
        ("polygon", [outside]),
        ("point", (g.x0 - 50.0, g.y0 + 10.0)),  # outside
        ("polygon", [nodata_only]),
        ("polygon", [poly_b]),
        ("point", centre(valid_r[-1], valid_c[-1])),
    ]
    out = feature_vectors(raster, features)
    assert len(out) == len(features)
    np.testing.assert_array_equal(out[0], raster.values[:, valid_r[5], valid_c[5]])
    np.testing.assert_array_equal(out[7], raster.values[:, valid_r[-1], valid_c[-1]])
    for index, ring in ((1, poly), (6, poly_b)):
        pixels, _ = brute_force_pixels(raster, [[ring]])
        rows, cols = np.array(sorted(pixels)).T
        expected = raster.values[:, rows, cols].astype(np.float64).mean(axis=1)
        np.testing.assert_allclose(np.asarray(out[index], dtype=np.float64), expected, rtol=1e-5, atol=1e-6)
    assert out[2] is None and out[3] is None and out[4] is None and out[5] is None


@pytest.mark.parametrize("kind", ["point", "polygon"])
def test_feature_vectors_only_outside(kind):
    raster = random_raster(10, 10, bands=2, seed=8)
    g = raster.grid
    geometry = (g.x0 + 500.0, g.y0) if kind == "point" else [closed([(0.0, 0.0), (1.0, 0.0), (1.0, 1.0)])]
    assert feature_vectors(raster, [(kind, geometry)]) == [None]
