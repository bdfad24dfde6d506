"""Tessera through geoembed:load: download and Source Cooperative layouts, manifest, single .npy, GeoTIFF export.

Expectations come from tests.fixtures.tessera (expected_at, is_water, tile_arrays, dequantise), never from geoembed.
"""

import json
import os
import shutil

import numpy as np
import pytest

from tests.fixtures import tessera as fx
from tests.fixtures.fields import PATCH_DEG, from_lonlat, to_lonlat
from tests.unit.conftest import NODATA, assert_vector, load, load_error

BANDS = [f"T{i:03d}" for i in range(128)]
# Across the 6°E seam: the west tile (grid_5.99_45.00) is in EPSG:32631, the east one (grid_6.00_45.00) in 32632.
SEAM_WEST = (5.9862, 44.9962, 6.0038, 45.0038)  # centre 5.995 -> UTM 31N
SEAM_EAST = (5.9902, 44.9962, 6.0118, 45.0038)  # centre 6.001 -> UTM 32N; east of 6.005 there is no tile
SOUTH = (151.1962, -33.8538, 151.2038, -33.8462)  # grid_151.20_-33.85, EPSG:32756, with a water box
EDGE_MARGIN = 0.0007  # degrees kept away from cell edges (expected_at is exact there only for the owning raster)
WATER_MARGIN = 0.0004


def _tile(name):
    return next(t for t in fx.TILES if t.name == name)


def _info(tess, name):
    return next(t for t in tess["tiles"] if t["name"] == name)


def _near_edge(lon, lat):
    for tile in fx.TILES:
        west, south, east, north = tile.bounds_lonlat
        for w, s, e, n, margin in [(west, south, east, north, EDGE_MARGIN)] + [(*box, WATER_MARGIN) for box in tile.water]:
            near_x = min(abs(lon - w), abs(lon - e)) < margin and s - margin <= lat <= n + margin
            near_y = min(abs(lat - s), abs(lat - n)) < margin and w - margin <= lon <= e + margin
            if near_x or near_y:
                return True
    return False


def _patch_centres(extent):
    """Centres of the fixture's constant-value patches inside an extent (nearest-neighbour safe points)."""
    west, south, east, north = extent
    i0, i1 = int(np.floor(west / PATCH_DEG)), int(np.ceil(east / PATCH_DEG))
    j0, j1 = int(np.floor(south / PATCH_DEG)), int(np.ceil(north / PATCH_DEG))
    for i in range(i0, i1):
        for j in range(j0, j1):
            lon, lat = (i + 0.5) * PATCH_DEG, (j + 0.5) * PATCH_DEG
            if west < lon < east and south < lat < north:
                yield lon, lat


def _check_values(loaded, expected_at, extent):
    counts = {"valid": 0, "water": 0, "outside": 0}
    for lon, lat in _patch_centres(extent):
        if _near_edge(lon, lat):
            continue
        expected = expected_at(lon, lat)
        vector = loaded.at_lonlat(lon, lat)
        assert vector is not None, f"{lon}, {lat} is outside the output"
        assert_vector(vector, expected, (lon, lat))
        if expected is not None:
            counts["valid"] += 1
        elif fx.is_water(lon, lat):
            counts["water"] += 1
        else:
            counts["outside"] += 1
    return counts


def _check_raster_basics(loaded, epsg):
    c, a, b, f, d, e = loaded.geotransform
    assert (b, d) == (0.0, 0.0) and e < 0, f"not north-up: {loaded.geotransform}"
    assert a == 10.0 and e == -10.0
    assert loaded.epsg == epsg
    assert loaded.count == 128 and loaded.band_names == BANDS
    assert loaded.types == {"Float32"} and set(loaded.nodata) == {NODATA}
    assert loaded.metadata["GEOEMBED_PRODUCT"] == "tessera"
    assert loaded.metadata["GEOEMBED_YEAR"] == "2024"


@pytest.fixture(scope="module")
def tess(products):
    return products["tessera"]


# --- mosaics across the two UTM zones -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("layout", "extent", "epsg"),
    [
        ("download", SEAM_WEST, 32631),
        ("sourcecoop", SEAM_WEST, 32631),
        ("manifest", SEAM_WEST, 32631),
        ("download", SEAM_EAST, 32632),
        ("manifest", SEAM_EAST, 32632),
    ],
)
def test_mosaic_across_zones(tess, tmp_path, layout, extent, epsg):
    source = {"download": tess["download_dir"], "sourcecoop": tess["sourcecoop_dir"], "manifest": tess["manifest"]}[layout]
    year = 2024 if layout == "manifest" else None
    loaded = load(tmp_path, "t.tif", product="tessera", source=str(source), extent=extent, year=year)
    _check_raster_basics(loaded, epsg)
    assert loaded.result.product == "tessera"
    names = sorted(os.path.basename(s) for s in loaded.result.provenance.sources)
    assert names == ["grid_5.99_45.00.npy", "grid_6.00_45.00.npy"]
    counts = _check_values(loaded, tess["expected_at"], extent)
    land = [lon for lon, lat in _patch_centres(extent) if not _near_edge(lon, lat) and tess["expected_at"](lon, lat) is not None]
    assert sum(lon < 5.995 for lon in land) >= 4 and sum(lon > 5.995 for lon in land) >= 4, land
    assert counts["valid"] >= 15, counts
    if extent == SEAM_WEST:
        assert counts["water"] >= 1, counts
    else:
        assert counts["outside"] >= 2, counts  # east of 6.005°E there is no tile: nodata
    # the grid covers the extent
    xs, ys = from_lonlat(loaded.crs, [extent[0], extent[2], extent[0], extent[2]], [extent[1], extent[1], extent[3], extent[3]])
    assert all(loaded.pixel_of(x, y) is not None for x, y in zip(xs, ys)), "the output does not cover the extent"


def test_water_and_land_everywhere_in_the_output(tess, tmp_path):
    """Every output pixel: water (landmask 0, NaN scale) is nodata, land inside a tile cell is valid."""
    loaded = load(tmp_path, "dense.tif", product="tessera", source=str(tess["download_dir"]), extent=SEAM_WEST)
    rows, cols = np.meshgrid(np.arange(loaded.height), np.arange(loaded.width), indexing="ij")
    c, a, _, f, _, e = loaded.geotransform
    lon, lat = to_lonlat(loaded.crs, c + a * (cols + 0.5), f + e * (rows + 0.5))
    nodata = np.all(loaded.values == NODATA, axis=0)
    seen = {"water": 0, "land": 0}
    step = 0.0003  # ~25 m: skip pixels whose neighbourhood straddles a water or cell edge
    for lo, la, empty in zip(lon.ravel(), lat.ravel(), nodata.ravel()):
        around = [(lo + dx, la + dy) for dx in (-step, 0, step) for dy in (-step, 0, step)]
        if all(fx.is_water(*p) for p in around):
            assert empty, f"water at {lo}, {la} is not nodata"
            seen["water"] += 1
        elif all(fx.tile_containing(*p) is not None and not fx.is_water(*p) for p in around):
            assert not empty, f"land at {lo}, {la} is nodata"
            seen["land"] += 1
    assert seen["water"] > 20 and seen["land"] > 5000, seen


def test_southern_hemisphere_tile(tess, tmp_path):
    loaded = load(tmp_path, "south.tif", product="tessera", source=str(tess["sourcecoop_dir"]), extent=SOUTH)
    _check_raster_basics(loaded, 32756)
    counts = _check_values(loaded, tess["expected_at"], SOUTH)
    assert counts["valid"] >= 6 and counts["water"] >= 2, counts
    assert [os.path.basename(s) for s in loaded.result.provenance.sources] == ["grid_151.20_-33.85.npy"]


def test_manifest_year_selects_and_mentions_the_mirror(tess, tmp_path):
    loaded = load(tmp_path, "m.tif", product="tessera", source=str(tess["manifest"]), extent=SEAM_WEST, year=2024)
    for source in loaded.result.provenance.sources:
        assert os.path.realpath(source).startswith(os.path.realpath(tess["sourcecoop_dir"]))
    assert json.loads(loaded.metadata["GEOEMBED_SOURCES"]) == loaded.result.provenance.sources


# --- one tile: the output is the tile itself -------------------------------------------------------------------


def _tile_expected(name):
    """(128, H, W) de-quantised values with NODATA over water, from the fixture's own arrays."""
    q, scales, land = fx.tile_arrays(_tile(name))
    values = np.moveaxis(fx.dequantise(q, scales), -1, 0).astype(np.float32)
    values[:, land == 0] = NODATA
    return values, land


@pytest.mark.parametrize(
    ("key", "name"),
    [("npy", "grid_5.99_45.00"), ("sourcecoop_npy", "grid_6.00_45.00"), ("npy", "grid_151.20_-33.85"), ("geotiff", None)],
)
def test_single_tile_without_extent_is_copied_exactly(tess, tmp_path, key, name):
    if key == "geotiff":
        source = tess["geotiff"]
        name = os.path.basename(os.path.dirname(source))
    else:
        source = _info(tess, name)[key]
    info = _info(tess, name)
    loaded = load(tmp_path, "one.tif", product="tessera", source=str(source))
    _check_raster_basics(loaded, info["epsg"])
    assert loaded.geotransform == pytest.approx(info["geotransform"], abs=1e-6)
    assert (loaded.width, loaded.height) == (info["width"], info["height"])
    expected, land = _tile_expected(name)
    assert (land == 0).any() == bool(_tile(name).water)
    np.testing.assert_allclose(loaded.values, expected, rtol=1e-6, atol=1e-7)
    assert [os.path.realpath(s) for s in loaded.result.provenance.sources] == [os.path.realpath(source)]


def test_geotiff_export_folder_with_extent(tess, tmp_path):
    info = _info(tess, "grid_5.99_45.00")
    west, south, east, north = info["bounds_lonlat"]
    extent = (west + 0.0012, south + 0.0012, east - 0.0012, north - 0.0012)
    loaded = load(tmp_path, "export.tif", source=str(tess["geotiff_dir"]), extent=extent)  # PRODUCT=auto
    assert loaded.result.product == "tessera"
    _check_raster_basics(loaded, 32631)
    counts = _check_values(loaded, tess["expected_at"], extent)
    assert counts["valid"] >= 6 and counts["water"] >= 1, counts


# --- errors ------------------------------------------------------------------------------------------------------


@pytest.fixture
def download_copy(tess, tmp_path):
    copy = tmp_path / "download-copy"
    shutil.copytree(tess["download_dir"], copy)
    return copy


def test_tile_without_scales(download_copy, tmp_path):
    scales = next(download_copy.rglob("grid_5.99_45.00_scales.npy"))
    scales.unlink()
    message = load_error(tmp_path / "out", product="tessera", source=str(download_copy), extent=SEAM_WEST)
    assert "grid_5.99_45.00_scales.npy" in message
    # the single .npy path too
    npy = next(download_copy.rglob("grid_5.99_45.00.npy"))
    message = load_error(tmp_path / "out", product="tessera", source=str(npy))
    assert "scales" in message


def test_tiles_without_any_landmask(download_copy, tmp_path):
    shutil.rmtree(download_copy / fx.LANDMASKS_DIR)
    for source in (download_copy, next(download_copy.rglob("grid_6.00_45.00.npy"))):
        message = load_error(tmp_path / "out", product="tessera", source=str(source), extent=SEAM_WEST)
        assert "landmask" in message


def test_manifest_without_extent(tess, tmp_path):
    message = load_error(tmp_path / "out", product="tessera", source=str(tess["manifest"]), year=2024)
    assert "EXTENT" in message


@pytest.mark.parametrize("year", [None, 2024, 2019])
def test_manifest_extent_without_tiles(tess, tmp_path, year):
    load_error(tmp_path / "out", product="tessera", source=str(tess["manifest"]), extent=(20.0, 10.0, 20.05, 10.05), year=year)
    if year == 2019:  # right place, wrong year
        message = load_error(tmp_path / "out", product="tessera", source=str(tess["manifest"]), extent=SEAM_WEST, year=year)
        assert "2019" in message


def test_folder_extent_without_tiles(tess, tmp_path):
    message = load_error(tmp_path / "out", product="tessera", source=str(tess["download_dir"]), extent=(20.0, 10.0, 20.05, 10.05))
    assert "EXTENT" in message


@pytest.mark.parametrize(
    "folder",
    [
        ("sourcecoop", "npy", "v1"),
        ("sourcecoop", "npy", "v1", "2024"),
        ("download", fx.EMBEDDINGS_DIR),
        ("download", fx.EMBEDDINGS_DIR, "2024"),
    ],
    ids=["npy-v1", "npy-v1-year", "representation", "representation-year"],
)
def test_folder_inside_the_layout_finds_its_landmasks(tess, tmp_path, folder):
    """PRODUCT=auto takes these folders as Tessera, and one .npy inside them loads (its landmask is found from the
    dataset root); the folder holding that .npy must load too instead of asking for the landmasks folder."""
    source = tess[f"{folder[0]}_dir"].joinpath(*folder[1:])
    loaded = load(tmp_path, "sub.tif", source=str(source), extent=SEAM_WEST)
    assert loaded.result.product == "tessera"
    _check_raster_basics(loaded, 32631)
    assert _check_values(loaded, tess["expected_at"], SEAM_WEST)["valid"] >= 15


def test_landmask_water_is_nodata_even_with_a_finite_scale(download_copy, tmp_path):
    """Water comes from the landmask (0 = water) too, not only from NaN scales: mark more water in a copied landmask."""
    from osgeo import gdal

    name = "grid_6.00_45.00"
    mask_path = download_copy / fx.LANDMASKS_DIR / f"{name}.tiff"
    dataset = gdal.Open(str(mask_path), gdal.GA_Update)
    land = dataset.GetRasterBand(1).ReadAsArray()
    land[40:60, 20:45] = 0
    dataset.GetRasterBand(1).WriteArray(land)
    dataset = None
    npy = next(download_copy.rglob(f"{name}.npy"))
    loaded = load(tmp_path, "mask.tif", product="tessera", source=str(npy))
    expected, _ = _tile_expected(name)
    expected[:, land == 0] = NODATA
    assert np.isfinite(np.load(next(download_copy.rglob(f"{name}_scales.npy")))[40:60, 20:45]).all()
    np.testing.assert_allclose(loaded.values, expected, rtol=1e-6, atol=1e-7)


def test_an_incomplete_tile_elsewhere_does_not_block_the_extent(download_copy, tmp_path, tess):
    """A download folder where a tile far from the extent (Sydney) lacks its scales: Europe still loads."""
    next(download_copy.rglob("grid_151.20_-33.85_scales.npy")).unlink()
    loaded = load(tmp_path, "europe.tif", product="tessera", source=str(download_copy), extent=SEAM_WEST)
    _check_raster_basics(loaded, 32631)
    assert _check_values(loaded, tess["expected_at"], SEAM_WEST)["valid"] >= 15
    # the incomplete tile itself is still refused when the extent needs it
    message = load_error(tmp_path / "out", product="tessera", source=str(download_copy), extent=SOUTH)
    assert "grid_151.20_-33.85_scales.npy" in message
