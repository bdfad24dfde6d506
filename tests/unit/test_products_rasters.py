"""Copernicus-Embed, Presto and ESD through geoembed:load, checked against their fixtures' own helpers."""

import json
import os

import numpy as np
import pytest

from tests.fixtures import copernicus as ce_fx
from tests.fixtures import esd as esd_fx
from tests.fixtures import presto as presto_fx
from tests.fixtures.fields import from_lonlat
from tests.unit.conftest import NODATA, assert_vector, load, load_error

# --- Copernicus-Embed ---------------------------------------------------------------------------------------------

CE_EXTENT = (5.1, 44.1, 10.6, 47.6)  # the European land block (cell centres 5..10 x 44..47) and empty cells east/north
CE_UTM_EXTENT = (7.0, 45.0, 9.0, 46.5)


@pytest.fixture(scope="module")
def ce(products):
    return products["copernicus-embed"]


@pytest.fixture(scope="module")
def ce_tif(ce, tmp_path_factory):
    return load(tmp_path_factory.mktemp("ce-tif"), "ce.tif", product="copernicus-embed", source=str(ce["tif"]), extent=CE_EXTENT)


def _all_entries(folder):
    """Every file and folder name under folder (hidden ones included)."""
    names = []
    for base, dirs, files in os.walk(folder):
        names.extend(os.path.relpath(os.path.join(base, name), folder) for name in dirs + files)
    return sorted(names)


def _on_lattice(value, origin, step=0.25):
    k = (value - origin) / step
    return abs(k - round(k)) < 1e-9


def test_copernicus_tif_grid_is_the_source_grid(ce_tif):
    loaded = ce_tif
    c, a, b, f, d, e = loaded.geotransform
    assert loaded.epsg == 4326
    assert (a, b, d, e) == (0.25, 0.0, 0.0, -0.25)
    assert _on_lattice(c, -180.125) and _on_lattice(f, 90.125), loaded.geotransform
    # it covers the extent, and not more than one cell beyond it
    assert c <= CE_EXTENT[0] < c + 0.25 and f - 0.25 < CE_EXTENT[3] <= f
    assert c + a * loaded.width >= CE_EXTENT[2] > c + a * (loaded.width - 1)
    assert f + e * loaded.height <= CE_EXTENT[1] < f + e * (loaded.height - 1)
    assert loaded.count == 768 and loaded.types == {"Float32"} and set(loaded.nodata) == {NODATA}
    assert loaded.metadata["GEOEMBED_PRODUCT"] == "copernicus-embed"


def test_copernicus_tif_values_at_every_cell_centre(ce_tif):
    loaded = ce_tif
    seen = {"valid": 0, "empty": 0}
    for row in range(loaded.height):
        for col in range(loaded.width):
            lon, lat = loaded.centre_lonlat(row, col)
            expected = ce_fx.expected_at(lon, lat)
            assert_vector(loaded.values[:, row, col], expected, (lon, lat))
            seen["valid" if expected is not None else "empty"] += 1
            if expected is None:
                assert not ce_fx.stored_at(lon, lat).any()  # an all-zero cell, not a gap in the fixture
    assert seen["valid"] >= 100 and seen["empty"] >= 10, seen


def test_copernicus_npz_gives_the_same_first_values_and_leaves_no_scratch(ce, ce_tif, tmp_path):
    out = tmp_path / "npz-out"
    loaded = load(out, "npz.tif", product="copernicus-embed", source=str(ce["npz"]), extent=CE_EXTENT)
    assert loaded.count == ce["npz_dims"] == 8
    assert loaded.geotransform == ce_tif.geotransform and (loaded.width, loaded.height) == (ce_tif.width, ce_tif.height)
    np.testing.assert_array_equal(loaded.values, ce_tif.values[:8])
    assert loaded.band_names == ce_tif.band_names[:8]
    assert _all_entries(out) == ["npz.tif"], "a temporary folder or file remains next to the output"


def test_copernicus_npz_provenance_names_the_npz(ce, tmp_path):
    """GEOEMBED_SOURCES must say where the values came from: the npz, not a deleted scratch GeoTIFF."""
    loaded = load(tmp_path, "npz.tif", product="copernicus-embed", source=str(ce["npz"]), extent=CE_EXTENT)
    sources = json.loads(loaded.metadata["GEOEMBED_SOURCES"])
    assert [os.path.basename(s) for s in sources] == ["embed_map_310k.npz"], sources
    assert all(os.path.exists(s) for s in sources), f"GEOEMBED_SOURCES names files that do not exist: {sources}"


def test_copernicus_npz_without_extent_is_the_whole_map(ce, tmp_path):
    loaded = load(tmp_path, "all.tif", product="copernicus-embed", source=str(ce["npz"]))
    assert loaded.geotransform == pytest.approx(ce["geotransform"]) and (loaded.width, loaded.height) == (1440, 721)
    for lon, lat in [(7.0, 45.5), (-59.0, -9.0), (0.0, 0.0), (179.75, -90.0), (-180.0, 90.0)]:
        expected = ce_fx.expected_at(lon, lat)
        assert_vector(loaded.at_lonlat(lon, lat), None if expected is None else expected[:8], (lon, lat))
    assert _all_entries(tmp_path) == ["all.tif"]


def test_copernicus_folder_with_tif_and_npz_reads_the_geotiff(ce, ce_tif, tmp_path):
    """PRODUCT=auto reports the GeoTIFF it found in the folder; the load must then read that georeferenced GeoTIFF
    (all 768 dims), not the npz beside it (no georeferencing, assumed grid)."""
    loaded = load(tmp_path, "folder.tif", source=str(ce["tif"].parent), extent=CE_EXTENT)
    assert loaded.result.product == "copernicus-embed"
    assert loaded.count == 768, f"{loaded.count} bands: the npz was read instead of {ce['tif'].name}"
    np.testing.assert_array_equal(loaded.values, ce_tif.values)
    assert [os.path.basename(s) for s in loaded.result.provenance.sources] == [ce["tif"].name]


@pytest.mark.parametrize("key", ["tif", "npz"])
@pytest.mark.parametrize("extent", [(5.0, 95.0, 6.0, 96.0), (200.0, 10.0, 201.0, 11.0), (-200.0, 10.0, -190.0, 11.0)])
def test_copernicus_extent_outside_coverage(ce, tmp_path, key, extent):
    load_error(tmp_path / "out", product="copernicus-embed", source=str(ce[key]), extent=extent)


def _check_projected(loaded, dims=None):
    seen = 0
    for row in range(loaded.height):
        for col in range(loaded.width):
            lon, lat = loaded.centre_lonlat(row, col)
            frac_lon, frac_lat = (lon + 180.125) / 0.25 % 1, (90.125 - lat) / 0.25 % 1
            if min(frac_lon, 1 - frac_lon, frac_lat, 1 - frac_lat) < 0.02:
                continue  # within ~100 m of a cell edge
            expected = ce_fx.expected_at(lon, lat)
            if expected is not None and dims:
                expected = expected[:dims]
            assert_vector(loaded.values[:, row, col], expected, (row, col, lon, lat))
            seen += expected is not None
    return seen


@pytest.mark.parametrize("crs", ["EPSG:32631", "EPSG:32632", "EPSG:3857"])
def test_copernicus_explicit_projected_crs_nearest_neighbour(ce, tmp_path, crs):
    """The global map reprojected onto a projected grid: every pixel takes the 0.25 degree cell under its centre.

    The map's pixel-is-area grid reaches -180.125 and +-90.125 (formats.md §10.8): its footprint must still be
    found to cover an extent west of a UTM zone's central meridian (32632 at 7-9°E) or in Web Mercator.
    """
    loaded = load(
        tmp_path, "proj.tif", product="copernicus-embed", source=str(ce["tif"]), extent=CE_UTM_EXTENT, crs=crs, resolution=5000.0
    )
    assert loaded.epsg == int(crs[5:]) and loaded.geotransform[1] == 5000.0 and loaded.geotransform[5] == -5000.0
    assert loaded.result.provenance.resampling == "nearest"
    assert _check_projected(loaded) >= 200


def test_copernicus_npz_explicit_crs_matches_the_tif(ce, tmp_path):
    """The rows/columns streamed out of the npz must cover the whole projected output grid, as the GeoTIFF does.

    In UTM 31N at 7-9°E the output grid's corners reach past the lon/lat extent by more than the margin cell.
    """
    request = dict(product="copernicus-embed", extent=CE_UTM_EXTENT, crs="EPSG:32631", resolution=5000.0)
    tif = load(tmp_path, "utm-tif.tif", source=str(ce["tif"]), **request)
    npz = load(tmp_path, "utm-npz.tif", source=str(ce["npz"]), **request)
    assert npz.geotransform == tif.geotransform and (npz.width, npz.height) == (tif.width, tif.height)
    assert _check_projected(tif) >= 200
    differ = np.argwhere(np.any(npz.values != tif.values[:8], axis=0))
    assert differ.size == 0, f"{len(differ)} pixels differ from the GeoTIFF's, e.g. (row, col) {differ[:3].tolist()}"
    assert _check_projected(npz, dims=8) >= 200


# --- Presto ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def presto(products):
    return products["presto"]


@pytest.fixture(scope="module")
def presto_whole(presto, tmp_path_factory):
    return load(tmp_path_factory.mktemp("presto"), "presto.tif", product="presto", source=str(presto["path"]))


def test_presto_keeps_epsg_25231(presto_whole):
    loaded = presto_whole
    assert loaded.epsg == 25231, f"Presto must stay in EPSG:25231 (Lome datum), got EPSG:{loaded.epsg}"
    assert loaded.epsg != 32631
    assert loaded.geotransform == presto_fx.GEOTRANSFORM and (loaded.width, loaded.height) == (72, 68)


def test_presto_raw_values_and_zero_vectors(presto_whole):
    loaded = presto_whole
    rows, cols = np.meshgrid(np.arange(presto_fx.HEIGHT), np.arange(presto_fx.WIDTH), indexing="ij")
    stored = np.moveaxis(presto_fx.pixel_values(rows, cols), -1, 0).astype(np.float32)
    zero = ~stored.any(axis=0)
    assert zero.sum() == (presto_fx.ZERO_BOX[1] - presto_fx.ZERO_BOX[0]) * (presto_fx.ZERO_BOX[3] - presto_fx.ZERO_BOX[2])
    assert np.all(loaded.values[:, zero] == NODATA)
    np.testing.assert_array_equal(loaded.values[:, ~zero], stored[:, ~zero])
    assert loaded.values[:, ~zero].max() > 1000  # raw uint16 numbers, not rescaled
    # stored_at through lon/lat, at pixel centres
    for row, col in [(0, 0), (5, 60), (67, 71), (30, 30), (10, 50)]:
        lon, lat = loaded.centre_lonlat(row, col)
        expected = presto_fx.expected_at(lon, lat)
        assert_vector(loaded.values[:, row, col], None if expected is None else expected.astype(np.float32), (row, col))


def test_presto_metadata_says_no_dequantisation_is_published(presto_whole):
    loaded = presto_whole
    assert loaded.band_names == [f"b{i}" for i in range(128)]
    assert loaded.metadata["GEOEMBED_PRODUCT"] == "presto"
    text = (loaded.metadata.get("GEOEMBED_NOTES", "") + " " + loaded.metadata.get("GEOEMBED_DEQUANTIZATION", "")).lower()
    assert "published" in text and ("no de-quantisation" in text or "none published" in text), text
    assert loaded.types == {"Float32"} and set(loaded.nodata) == {NODATA}


def test_presto_with_lonlat_extent_stays_on_the_file_grid(presto, tmp_path):
    west, south, east, north = presto["bounds_lonlat"]
    extent = (west + 0.001, south + 0.001, east - 0.002, north - 0.001)
    loaded = load(tmp_path, "part.tif", source=str(presto["path"]), extent=extent)  # PRODUCT=auto
    assert loaded.result.product == "presto" and loaded.epsg == 25231
    c, a, _, f, _, e = loaded.geotransform
    assert (a, e) == (10.0, -10.0)
    assert (c - presto_fx.ORIGIN[0]) % 10 == 0 and (presto_fx.ORIGIN[1] - f) % 10 == 0
    assert loaded.width < presto_fx.WIDTH and loaded.height < presto_fx.HEIGHT
    checked = 0
    for row in range(0, loaded.height, 3):
        for col in range(0, loaded.width, 3):
            lon, lat = loaded.centre_lonlat(row, col)
            expected = presto_fx.expected_at(lon, lat)
            assert_vector(loaded.values[:, row, col], None if expected is None else expected.astype(np.float32), (row, col))
            checked += 1
    assert checked > 50


# --- ESD ------------------------------------------------------------------------------------------------------------

ESD_BANDS = [f"M{m:02d}_{k}" for m in range(1, 13) for k in range(6)]


@pytest.fixture(scope="module")
def esd(products):
    return products["esd"]


def test_fixture_fsq_decode_is_the_published_formula():
    """The fixture's decoder (used for every expectation below) against formats.md §8.1 written out by hand."""
    levels, basis = (8, 8, 8, 5, 5, 5), (1, 8, 64, 512, 2560, 12800)
    for code in (0, 1, 7, 8, 63, 64, 511, 512, 2559, 2560, 12799, 12800, 31337, 63999):
        by_hand = [((code // b) % n - n // 2) / (n // 2) for b, n in zip(basis, levels)]
        np.testing.assert_allclose(esd_fx.fsq_decode(code), by_hand)
    np.testing.assert_allclose(esd_fx.fsq_decode(0), [-1] * 6)
    np.testing.assert_allclose(esd_fx.fsq_decode(63999), [0.75, 0.75, 0.75, 1, 1, 1])


def test_esd_whole_tile(esd, tmp_path):
    loaded = load(tmp_path, "esd.tif", product="esd", source=str(esd["path"]))
    assert loaded.epsg == 32631 and loaded.geotransform == esd_fx.GEOTRANSFORM
    assert (loaded.width, loaded.height) == (96, 80)
    assert loaded.count == 72 and loaded.band_names == ESD_BANDS
    assert loaded.metadata["GEOEMBED_PRODUCT"] == "esd" and loaded.metadata["GEOEMBED_YEAR"] == "2024"
    rows, cols = np.meshgrid(np.arange(80), np.arange(96), indexing="ij")
    codes = esd_fx.pixel_bands(rows, cols)
    expected = np.moveaxis(esd_fx.fsq_decode(codes[..., :12]).reshape(80, 96, 72), -1, 0)
    empty = ~codes.any(axis=-1)
    row0, row1, col0, col1 = esd_fx.NODATA_BOX
    assert empty.sum() == (row1 - row0) * (col1 - col0)
    assert np.all(loaded.values[:, empty] == NODATA)
    np.testing.assert_array_equal(loaded.values[:, ~empty], expected[:, ~empty])


def test_esd_lonlat_extent_gives_30_m_utm(esd, tmp_path):
    extent = (5.505, 44.206, 5.535, 44.223)
    loaded = load(tmp_path, "esd-part.tif", source=str(esd["dataset_dir"]), extent=extent)  # PRODUCT=auto
    assert loaded.result.product == "esd"
    c, a, b, f, d, e = loaded.geotransform
    assert loaded.epsg == 32631 and (a, b, d, e) == (30.0, 0.0, 0.0, -30.0)
    checked = {"valid": 0, "nodata": 0}
    for row in range(loaded.height):
        for col in range(loaded.width):
            lon, lat = loaded.centre_lonlat(row, col)
            expected = esd_fx.expected_at(lon, lat)
            assert_vector(loaded.values[:, row, col], expected, (row, col))
            checked["valid" if expected is not None else "nodata"] += 1
    assert checked["valid"] > 1000 and checked["nodata"] > 100, checked


def test_esd_explicit_crs_and_resolution(esd, tmp_path):
    extent = (5.505, 44.206, 5.535, 44.223)
    request = dict(product="esd", source=str(esd["path"]), extent=extent, crs="EPSG:3857", resolution=60.0)
    loaded = load(tmp_path, "esd-merc.tif", **request)
    assert loaded.epsg == 3857 and loaded.geotransform[1] == 60.0
    checked = 0
    for row in range(0, loaded.height, 2):
        for col in range(0, loaded.width, 2):
            lon, lat = loaded.centre_lonlat(row, col)
            x, y = from_lonlat(esd_fx.CRS, lon, lat)
            fx_col, fx_row = (x - esd_fx.ORIGIN[0]) / 30, (esd_fx.ORIGIN[1] - y) / 30
            if min(fx_col % 1, 1 - fx_col % 1, fx_row % 1, 1 - fx_row % 1) < 0.05:
                continue  # too close to a source pixel edge for nearest neighbour to be unambiguous
            assert_vector(loaded.values[:, row, col], esd_fx.expected_at(lon, lat), (row, col))
            checked += 1
    assert checked > 100


def test_presto_and_esd_extent_outside_coverage(presto, esd, tmp_path):
    for product, source in (("presto", presto["path"]), ("esd", esd["path"])):
        message = load_error(tmp_path / "out", product=product, source=str(source), extent=(20.0, 10.0, 20.1, 10.1))
        assert "EXTENT" in message or "extent" in message


def test_presto_reprojected_to_wgs84_utm_keeps_positions(presto, tmp_path):
    """EPSG:25231 is the Lome datum: an explicit EPSG:32631 output is a real reprojection, values stay at their places."""
    loaded = load(tmp_path, "presto-32631.tif", product="presto", source=str(presto["path"]), crs="EPSG:32631")
    assert loaded.epsg == 32631 and loaded.geotransform[1] == 10.0
    checked = 0
    for row in range(0, loaded.height, 2):
        for col in range(0, loaded.width, 2):
            lon, lat = loaded.centre_lonlat(row, col)
            x, y = from_lonlat(presto_fx.CRS, lon, lat)
            fx_col, fx_row = (x - presto_fx.ORIGIN[0]) / 10, (presto_fx.ORIGIN[1] - y) / 10
            if min(fx_col % 1, 1 - fx_col % 1, fx_row % 1, 1 - fx_row % 1) < 0.05:
                continue  # nearest neighbour is ambiguous this close to a source pixel edge
            expected = presto_fx.expected_at(lon, lat)
            assert_vector(loaded.values[:, row, col], None if expected is None else expected.astype(np.float32), (row, col))
            checked += expected is not None
    assert checked > 300
