"""Patch products on their own lattice: one pixel per patch, its centre at the patch's centre, no empty border.

Fixtures (tests.fixtures.patch_lattices) put chips on lattices that are not round multiples of the patch size: the real
Clay 03WVN lattice, Earth Index points whose 320 m patches have edges at 160 m + k x 320 m, and two lattices in one
SOURCE (two UTM zones, two tiles of one zone). Expectations are the chips' own UTM boxes and vectors.
"""

import math

import numpy as np
import pytest

from geoembed.loaders.products.patch_lattice import Footprints, native_zone
from tests.fixtures import patch_lattices as fx
from tests.fixtures.fields import from_lonlat, point_wkb, polygon_wkb, ring_contains, to_lonlat
from tests.unit.conftest import NODATA, load

CENTRE_TOLERANCE_M = 1.0


@pytest.fixture(scope="module")
def lattices(tmp_path_factory):
    return fx.build(tmp_path_factory.mktemp("lattices"))


def pixel_holding(loaded, x, y):
    """(row, col) of the output pixel containing (x, y), and that pixel's centre."""
    cell = loaded.pixel_of(x, y)
    assert cell is not None, f"({x:.1f}, {y:.1f}) is outside the output"
    c, a, _, f, _, e = loaded.geotransform
    return cell, (c + a * (cell[1] + 0.5), f + e * (cell[0] + 0.5))


def assert_one_pixel_per_chip(loaded, chips):
    """Every chip's vector sits in the pixel whose centre is within 1 m of the chip's centre, and nowhere else."""
    for chip in chips:
        x, y = from_lonlat(loaded.crs, *chip["centre"])
        (row, col), (px, py) = pixel_holding(loaded, x, y)
        assert (
            math.hypot(px - x, py - y) <= CENTRE_TOLERANCE_M
        ), f"chip {chip['index']}: pixel centre {px - x:.1f}, {py - y:.1f} m off"
        np.testing.assert_array_equal(loaded.values[:, row, col], chip["embedding"])
    valid = ~np.all(loaded.values == NODATA, axis=0)
    assert int(valid.sum()) == len(chips), f"{int(valid.sum())} pixels hold a vector for {len(chips)} chips"


def test_clay_chips_on_the_real_03wvn_lattice(lattices, tmp_path):
    info = lattices["clay_03wvn"]
    loaded = load(tmp_path, "wvn.tif", source=str(info["path"]))
    assert loaded.result.product == "clay" and loaded.crs == info["crs"]
    rows, cols = info["shape"]
    assert loaded.geotransform == (info["west"], fx.CLAY_M, 0.0, info["north"], 0.0, -fx.CLAY_M)
    assert (loaded.width, loaded.height) == (cols, rows), "an empty row or column around the chips"
    assert_one_pixel_per_chip(loaded, info["chips"])
    hole_row, hole_col = fx.WVN_HOLE
    assert np.all(loaded.values[:, hole_row, hole_col] == NODATA), "the missing chip is nodata"
    lattice_lines = [m for m in loaded.log.infos if m.startswith("Patch lattice")]
    assert lattice_lines and "EPSG:32603" in lattice_lines[0] and "11 of 11" in lattice_lines[0], loaded.log.infos
    assert "399955" in lattice_lines[0] and "7300025" in lattice_lines[0]


def test_earth_index_points_offset_by_half_a_patch(lattices, tmp_path):
    info = lattices["ei_offset"]
    loaded = load(tmp_path, "ei.tif", source=str(info["path"].parent))
    assert loaded.result.product == "earth-index" and loaded.crs == info["crs"]
    rows, cols = info["shape"]
    c, a, _, f, _, e = loaded.geotransform
    assert (a, e) == (fx.EI_M, -fx.EI_M) and (loaded.width, loaded.height) == (cols, rows)
    assert abs(c - info["west"]) <= 0.01 and abs(f - info["north"]) <= 0.01, (c, f)
    assert_one_pixel_per_chip(loaded, info["chips"])


def test_extent_keeps_the_lattice_and_adds_no_border(lattices, tmp_path):
    info = lattices["clay_03wvn"]
    cols = info["shape"][1]
    first, last = info["chips"][1], info["chips"][2 * cols + 2 - 1]  # chip (0, 1) and chip (2, 2) (one chip is missing)
    extent = (first["centre"][0], last["centre"][1], last["centre"][0], first["centre"][1])
    loaded = load(tmp_path, "wvn-part.tif", product="clay", source=str(info["path"]), extent=extent)
    c, _, _, f, _, _ = loaded.geotransform
    assert (c, f) == (info["west"] + fx.CLAY_M, info["north"]), "the grid left the chips' lattice"
    assert (loaded.width, loaded.height) == (2, 3)
    inside = [ch for ch in info["chips"] if 1 <= ch["index"] % cols <= 2]
    assert_one_pixel_per_chip(loaded, inside)


def test_two_zones_one_lattice_and_the_others_moved(lattices, tmp_path):
    info = lattices["two_zones"]
    main, other = info["blocks"][info["main"]], info["blocks"][info["other"]]
    loaded = load(tmp_path, "zones.tif", product="clay", source=str(info["dir"]))
    assert loaded.crs == info["crs"], "the zone holding most chips is the output CRS"
    line = next(m for m in loaded.log.infos if m.startswith("Patch lattice"))
    assert f"{len(main)} of {len(main) + len(other)}" in line and f"{len(other)} patch(es) of other lattices" in line, line
    for chip in main:  # the main block: exactly one pixel each, centred
        x, y = from_lonlat(loaded.crs, *chip["centre"])
        (row, col), (px, py) = pixel_holding(loaded, x, y)
        assert math.hypot(px - x, py - y) <= CENTRE_TOLERANCE_M
        np.testing.assert_array_equal(loaded.values[:, row, col], chip["embedding"])
    for chip in other:  # moved: in the pixel holding its centre
        (row, col), _ = pixel_holding(loaded, *from_lonlat(loaded.crs, *chip["centre"]))
        np.testing.assert_array_equal(loaded.values[:, row, col], chip["embedding"])
    valid = ~np.all(loaded.values == NODATA, axis=0)
    assert valid[:, 0].any() and valid[:, -1].any() and valid[0].any() and valid[-1].any(), "an empty border"


def test_two_tiles_of_one_zone(lattices, tmp_path):
    info = lattices["two_tiles"]
    main, other = info["blocks"][info["main"]], info["blocks"][info["other"]]
    loaded = load(tmp_path, "tiles.tif", product="clay", source=str(info["dir"]))
    west, north = fx.TILE_A[1], fx.TILE_A[2]
    c, _, _, f, _, _ = loaded.geotransform
    assert (c - west) % fx.CLAY_M == 0 and (f - north) % fx.CLAY_M == 0, "not the lattice of the larger block"
    for chip in main + other:
        (row, col), _ = pixel_holding(loaded, *chip["utm_centre"])
        np.testing.assert_array_equal(loaded.values[:, row, col], chip["embedding"])
    valid = ~np.all(loaded.values == NODATA, axis=0)
    assert int(valid.sum()) == len(main) + len(other), "a moved chip must not spread over several pixels here"


def test_another_resolution_takes_the_chip_under_each_pixel(lattices, tmp_path):
    info = lattices["clay_03wvn"]
    loaded = load(tmp_path, "wvn-1km.tif", product="clay", source=str(info["path"]), resolution=1000.0)
    assert loaded.geotransform[1] == 1000.0
    assert any("containing its centre" in m for m in loaded.log.infos), loaded.log.infos
    assert loaded.geotransform[0] % 1000.0 == info["west"] % 1000.0, "the grid is not anchored on the chips' edges"
    checked = 0
    for row, col in np.ndindex(loaded.height, loaded.width):
        c, a, _, f, _, e = loaded.geotransform
        x, y = c + a * (col + 0.5), f + e * (row + 0.5)
        chip = next((ch for ch in info["chips"] if _in_box(ch["utm_box"], x, y)), None)
        if chip is None:
            assert np.all(loaded.values[:, row, col] == NODATA)
        else:
            np.testing.assert_array_equal(loaded.values[:, row, col], chip["embedding"])
            checked += 1
    assert checked == 11 * 25, checked  # 5 x 5 pixels of 1 km in each 5.12 km chip (edges aligned on the chips')


def test_a_crs_the_chips_were_not_cut_in(lattices, tmp_path):
    info = lattices["clay_03wvn"]
    loaded = load(tmp_path, "wvn-4n.tif", product="clay", source=str(info["path"]), crs="EPSG:32604")
    assert loaded.crs == "EPSG:32604"
    assert any("containing its centre" in m for m in loaded.log.infos)
    shown = set()
    for row, col in np.ndindex(loaded.height, loaded.width):  # chips are turned here: each pixel shows the chip under it
        lon, lat = loaded.centre_lonlat(row, col)
        chip = next((ch for ch in info["chips"] if ring_contains(ch["ring"], lon, lat)), None)
        if chip is None:
            assert np.all(loaded.values[:, row, col] == NODATA)
        else:
            np.testing.assert_array_equal(loaded.values[:, row, col], chip["embedding"])
            shown.add(chip["index"])
    assert len(shown) >= 8, shown


def test_native_zone_of_chips_and_points(lattices):
    chips = lattices["clay_03wvn"]["chips"]
    zone = native_zone(Footprints([polygon_wkb(c["ring"]) for c in chips]), fx.CLAY_M)
    assert zone.crs == "EPSG:32603" and zone.native == len(chips)
    points = lattices["ei_offset"]["chips"]
    zone = native_zone(Footprints([point_wkb(*p["centre"]) for p in points]), fx.EI_M)
    assert zone.crs == "EPSG:32633"


def test_lonlat_round_trip_of_the_fixture():
    """The fixture's chips are what they claim: corners back in UTM land on the lattice to the millimetre."""
    chip = fx.chip(fx.WVN_CRS, fx.WVN_WEST, fx.WVN_NORTH, fx.CLAY_M, 4, 1, 0)
    xs, ys = from_lonlat(fx.WVN_CRS, [p[0] for p in chip["ring"]], [p[1] for p in chip["ring"]])
    assert np.allclose(xs, [fx.WVN_WEST, fx.WVN_WEST + fx.CLAY_M, fx.WVN_WEST + fx.CLAY_M, fx.WVN_WEST, fx.WVN_WEST], atol=1e-3)
    lon, lat = to_lonlat(fx.WVN_CRS, *chip["utm_centre"])
    assert (float(lon), float(lat)) == chip["centre"]


def _in_box(box, x, y):
    return box[0] < x < box[2] and box[1] < y < box[3]


def test_major_tom_centres_stand_for_fragments_of_their_model(tmp_path):
    """A shard with only centre_lon/centre_lat: SigLIP centres (1152-d) are 3840 m fragments, one pixel each."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    crs, west, north, size = "EPSG:32633", 448000.0, 4520320.0, 3840.0
    chips = fx.block(crs, west, north, (2, 3), size, 1152, 1152)
    flat = pa.array(np.concatenate([c["embedding"] for c in chips]), pa.float32())
    table = pa.table(
        {
            "embedding": pa.ListArray.from_arrays(pa.array(np.arange(0, len(flat) + 1, 1152, dtype=np.int32)), flat),
            "centre_lon": pa.array([c["centre"][0] for c in chips], pa.float64()),
            "centre_lat": pa.array([c["centre"][1] for c in chips], pa.float64()),
        }
    )
    path = tmp_path / "siglip" / "part_00001-00001.parquet"
    path.parent.mkdir()
    pq.write_table(table, path)
    loaded = load(tmp_path, "siglip.tif", source=str(path))
    assert loaded.result.product == "major-tom" and loaded.crs == crs
    assert loaded.geotransform[1] == size and (loaded.width, loaded.height) == (3, 2)
    assert_one_pixel_per_chip(loaded, chips)


def test_footprints_of_odd_geometries():
    """A line stands for the ring of its vertices; a geometry without any coordinate is refused in one line."""
    import struct

    from geoembed.loaders.errors import GeoEmbedError

    line = struct.pack("<BII", 1, 2, 3) + np.array([[10.0, 50.0], [10.01, 50.0], [10.01, 50.01]]).astype("<f8").tobytes()
    footprints = Footprints([line, point_wkb(10.0, 50.0)])
    xmin, ymin, xmax, ymax = footprints.boxes("EPSG:4326")
    assert list(footprints.is_point) == [False, True]
    np.testing.assert_allclose([xmin[0], ymin[0], xmax[0], ymax[0]], [10.0, 50.0, 10.01, 50.01])
    empty_polygon = struct.pack("<BII", 1, 3, 0)
    with pytest.raises(GeoEmbedError, match="no coordinates"):
        Footprints([empty_polygon])
