"""Grid maths: snapping, north-up transforms, blocks, inverse transforms, UTM zones, CRS units."""

import math

import numpy as np
import pytest
from pyproj import Transformer

from geoembed.loaders.errors import GeoEmbedError
from geoembed.loaders.raster.grid import (
    Grid,
    Window,
    grid_from_bounds,
    invert_geotransform,
    metres_to_crs_units,
    transform_bounds,
    utm_crs_for,
)


def test_grid_from_bounds_snaps_outward():
    grid = grid_from_bounds("EPSG:32631", (734441.0, 4986039.0, 737639.5, 4988601.0), 10.0)
    assert (grid.x0, grid.y0) == (734440.0, 4988610.0)
    assert (grid.width, grid.height) == (320, 258)
    assert grid.bounds == (734440.0, 4986030.0, 737640.0, 4988610.0)
    xmin, ymin, xmax, ymax = grid.bounds
    assert xmin <= 734441.0 and ymin <= 4986039.0 and xmax >= 737639.5 and ymax >= 4988601.0


def test_grid_from_bounds_keeps_exact_multiples():
    grid = grid_from_bounds("EPSG:32631", (734440.0, 4986040.0, 737640.0, 4988600.0), 10.0)
    assert grid.bounds == (734440.0, 4986040.0, 737640.0, 4988600.0)
    assert (grid.width, grid.height) == (320, 256)
    # float noise on an exact multiple does not add a row or column
    noisy = (0.1 * 3 * 100, 0.7 * 10, 0.1 * 3 * 1000, 0.7 * 100)  # 30.000000000000004, 7.000000000000001, ...
    grid = grid_from_bounds("EPSG:3857", noisy, 0.1)
    assert (grid.width, grid.height) == (2700, 630)
    assert grid.x0 == pytest.approx(30.0) and grid.y0 == pytest.approx(70.0)


def test_grid_from_bounds_negative_coordinates_and_rectangular_pixels():
    grid = grid_from_bounds("EPSG:3857", (-25.0, -35.0, -5.0, -5.0), 10.0)
    assert grid.bounds == (-30.0, -40.0, 0.0, 0.0)
    assert (grid.width, grid.height) == (3, 4)
    grid = grid_from_bounds("EPSG:3857", (0.0, 0.0, 100.0, 100.0), 10.0, 25.0)
    assert (grid.res_x, grid.res_y, grid.width, grid.height) == (10.0, 25.0, 10, 4)
    assert grid.geotransform == (0.0, 10.0, 0.0, 100.0, 0.0, -25.0)


def test_degenerate_bounds_give_one_pixel():
    grid = grid_from_bounds("EPSG:3857", (15.0, 15.0, 15.0, 15.0), 10.0)
    assert (grid.width, grid.height) == (1, 1)
    assert grid.bounds[0] <= 15.0 <= grid.bounds[2] and grid.bounds[1] <= 15.0 <= grid.bounds[3]


@pytest.mark.parametrize("res", [(0.0, None), (-10.0, None), (10.0, 0.0), (10.0, -1.0), (float("nan"), None)])
def test_non_positive_resolution_raises(res):
    with pytest.raises(GeoEmbedError):
        grid_from_bounds("EPSG:3857", (0.0, 0.0, 100.0, 100.0), *res)


def test_geotransform_is_north_up_and_matches_bounds():
    grid = Grid("EPSG:32631", 1000.0, 5000.0, 10.0, 20.0, 30, 40)
    c, a, b, f, d, e = grid.geotransform
    assert (b, d) == (0.0, 0.0)
    assert a == 10.0 and e == -20.0  # negative Y pixel size
    assert (c, f) == (1000.0, 5000.0)
    # the bounds are the corners the geotransform gives for pixel edges (0,0) and (width,height)
    assert grid.bounds == (c, f + e * 40, c + a * 30, f)
    assert grid.bounds == (1000.0, 4200.0, 1300.0, 5000.0)


def test_pixel_centres_and_window_grid():
    grid = Grid("EPSG:32631", 1000.0, 5000.0, 10.0, 10.0, 4, 3)
    xs, ys = grid.pixel_centres()
    np.testing.assert_array_equal(xs, [1005.0, 1015.0, 1025.0, 1035.0])
    np.testing.assert_array_equal(ys, [4995.0, 4985.0, 4975.0])  # row 0 is the north
    sub = grid.window_grid(Window(1, 2, 3, 1))
    assert (sub.x0, sub.y0, sub.width, sub.height) == (1010.0, 4980.0, 3, 1)
    assert sub.bounds == (1010.0, 4970.0, 1040.0, 4980.0)


@pytest.mark.parametrize("width,height,size", [(1100, 700, 512), (512, 512, 512), (5, 3, 2), (1, 1, 512), (1025, 1, 256)])
def test_blocks_cover_the_grid_exactly_once(width, height, size):
    grid = Grid("EPSG:3857", 0.0, 0.0, 1.0, 1.0, width, height)
    hits = np.zeros((height, width), dtype=np.int32)
    windows = list(grid.blocks(size))
    for w in windows:
        assert 0 < w.width <= size and 0 < w.height <= size
        assert w.col % size == 0 and w.row % size == 0
        hits[w.row : w.row + w.height, w.col : w.col + w.width] += 1
    assert (hits == 1).all()
    assert len(windows) == math.ceil(width / size) * math.ceil(height / size)
    # row by row from the north
    assert [(w.row, w.col) for w in windows] == sorted((w.row, w.col) for w in windows)


def test_edge_blocks_are_smaller():
    grid = Grid("EPSG:3857", 0.0, 0.0, 1.0, 1.0, 1100, 700)
    windows = list(grid.blocks(512))
    assert windows[0] == Window(0, 0, 512, 512)
    assert windows[2] == Window(1024, 0, 76, 512)
    assert windows[-1] == Window(1024, 512, 76, 188)


def test_index_of():
    grid = Grid("EPSG:32631", 1000.0, 5000.0, 10.0, 10.0, 4, 3)
    xs, ys = grid.pixel_centres()
    for col, x in enumerate(xs):
        for row, y in enumerate(ys):
            assert grid.index_of(x, y) == (col, row)
    assert grid.index_of(1000.0, 5000.0) == (0, 0)  # north-west corner belongs to pixel (0, 0)
    assert grid.index_of(1000.0 + 1e-9, 5000.0 - 1e-9) == (0, 0)
    assert grid.index_of(999.0, 5001.0) == (-1, -1)
    assert grid.index_of(1041.0, 4969.0) == (4, 3)  # outside, past the south-east corner


def _forward(gt, col, row):
    c, a, b, f, d, e = gt
    return c + a * col + b * row, f + d * col + e * row


@pytest.mark.parametrize(
    "gt",
    [
        (734440.0, 10.0, 0.0, 4986040.0, 0.0, 10.0),  # south-up AEF tile
        (734440.0, 10.0, 0.0, 4988600.0, 0.0, -10.0),  # north-up
        (1000.0, 8.660254037844387, -5.0, 2000.0, 5.0, 8.660254037844387),  # rotated by 30 degrees
        (-50.0, 2.0, 0.5, 70.0, -0.25, -3.0),  # sheared, non-square
    ],
    ids=["south-up", "north-up", "rotated", "sheared"],
)
def test_invert_geotransform_round_trip(gt):
    inverse = invert_geotransform(gt)
    rng = np.random.default_rng(3)
    for col, row in rng.uniform(-100, 9000, size=(50, 2)):
        x, y = _forward(gt, col, row)
        back_col, back_row = _forward(inverse, x, y)
        assert back_col == pytest.approx(col, abs=1e-6)
        assert back_row == pytest.approx(row, abs=1e-6)
    # independent check: the linear part of the inverse is the matrix inverse
    matrix = np.array([[gt[1], gt[2]], [gt[4], gt[5]]])
    np.testing.assert_allclose(np.array([[inverse[1], inverse[2]], [inverse[4], inverse[5]]]), np.linalg.inv(matrix), rtol=1e-12)


def test_invert_geotransform_of_south_up_tile_maps_north_edge_to_last_row():
    inverse = invert_geotransform((734440.0, 10.0, 0.0, 4986040.0, 0.0, 10.0))
    col, row = _forward(inverse, 734445.0, 4986040.0 + 10 * 256 - 5.0)  # centre of the northernmost pixel
    assert (math.floor(col), math.floor(row)) == (0, 255)


def test_invert_degenerate_geotransform_raises():
    with pytest.raises(GeoEmbedError):
        invert_geotransform((0.0, 0.0, 0.0, 0.0, 0.0, 10.0))
    with pytest.raises(GeoEmbedError):
        invert_geotransform((0.0, 1.0, 2.0, 0.0, 2.0, 4.0))  # collinear axes


@pytest.mark.parametrize(
    "lon,lat,epsg",
    [
        (2.35, 48.85, 32631),
        (5.999, 45.0, 32631),
        (6.0, 45.0, 32632),  # zone boundary belongs to the eastern zone
        (6.001, 45.0, 32632),
        (151.2, -33.85, 32756),
        (-122.4, 37.8, 32610),
        (0.0, 0.0, 32631),  # the equator counts as north
        (-0.0001, -0.0001, 32730),
        (-180.0, 10.0, 32601),
        (180.0, 10.0, 32660),  # lon = 180 stays in zone 60
        (179.999, -10.0, 32760),
        (-177.0, -89.0, 32701),
    ],
)
def test_utm_crs_for(lon, lat, epsg):
    assert utm_crs_for(lon, lat) == f"EPSG:{epsg}"


@pytest.mark.parametrize("lon,lat", [(180.5, 0.0), (-181.0, 0.0), (0.0, 91.0), (0.0, -90.5)])
def test_utm_crs_for_out_of_range(lon, lat):
    with pytest.raises(GeoEmbedError):
        utm_crs_for(lon, lat)


def test_transform_bounds_identity():
    bounds = (734441.25, 4986039.5, 737639.75, 4988601.125)
    assert transform_bounds("EPSG:32631", "EPSG:32631", bounds) == bounds
    assert transform_bounds("EPSG:32631", "epsg:32631", list(bounds)) == bounds  # same CRS spelled differently


def test_transform_bounds_contains_every_reprojected_edge_point():
    bounds = (5.98, 44.99, 6.02, 45.01)
    got = transform_bounds("EPSG:4326", "EPSG:32632", bounds)
    forward = Transformer.from_crs("EPSG:4326", "EPSG:32632", always_xy=True)
    t = np.linspace(0, 1, 41)
    lon = np.concatenate([5.98 + 0.04 * t, np.full(41, 6.02), 5.98 + 0.04 * t, np.full(41, 5.98)])
    lat = np.concatenate([np.full(41, 44.99), 44.99 + 0.02 * t, np.full(41, 45.01), 44.99 + 0.02 * t])
    xs, ys = forward.transform(lon, lat)
    tol = 0.5  # metres: densification at 21 points per edge is enough for a 4 km box
    assert got[0] <= xs.min() + tol and got[2] >= xs.max() - tol
    assert got[1] <= ys.min() + tol and got[3] >= ys.max() - tol
    assert got[0] == pytest.approx(xs.min(), abs=1.0) and got[3] == pytest.approx(ys.max(), abs=1.0)


def test_transform_bounds_error_on_impossible_extent():
    far_side = "+proj=ortho +lat_0=0 +lon_0=0 +datum=WGS84 +units=m +no_defs"
    with pytest.raises(GeoEmbedError) as info:
        transform_bounds("EPSG:4326", far_side, (170.0, 0.0, 175.0, 10.0))
    assert "\n" not in str(info.value)


def test_metres_to_crs_units():
    assert metres_to_crs_units("EPSG:32631", 10.0) == pytest.approx(10.0)
    assert metres_to_crs_units("EPSG:3857", 10.0) == pytest.approx(10.0)
    # one degree of latitude is about 111.32 km
    assert metres_to_crs_units("EPSG:4326", 10.0) == pytest.approx(10.0 / 111_320.0, rel=1e-9)
    assert 8.9e-5 < metres_to_crs_units("EPSG:4326", 10.0) < 9.1e-5
    # US survey feet (EPSG:2227, California zone 3)
    assert metres_to_crs_units("EPSG:2227", 10.0) == pytest.approx(10.0 / 0.3048006096, rel=1e-6)
