"""Embedding rasters users bring, through geoembed:load: Earth Engine exports of AlphaEarth (pieces, one file, over
http), Major TOM's copy, any other multi-band raster (the generic product), and Tessera's water rule on both paths.

Expectations come from the files themselves read with GDAL, and from tests.fixtures.ee_export / tests.fixtures.tessera
(value_at, tile_arrays), never from geoembed.
"""

import math
import os
import shutil

import numpy as np
import pytest
from osgeo import gdal

from geoembed.loaders.errors import GeoEmbedError
from geoembed.loaders.load import detect_product
from tests.fixtures import ee_export as fx
from tests.fixtures import tessera as tess_fx
from tests.fixtures.fields import PATCH_DEG, to_lonlat
from tests.support.range_server import RangeServer
from tests.unit.conftest import NODATA, load, load_error
from tests.unit.helpers import assert_one_line, dequant_formula, raw_codes

EXPORT_NAME = "Earth Engine export (float values, already de-quantised)"
MAJOR_TOM_NAME = "Major TOM copy (float values, already de-quantised)"


@pytest.fixture(scope="module")
def ee(tmp_path_factory):
    return fx.build(tmp_path_factory.mktemp("ee-export"))


def read_gdal(path):
    """(values (bands, rows, cols) as stored, nodata value, band descriptions) of a raster read with GDAL."""
    dataset = gdal.Open(str(path))
    array = dataset.ReadAsArray()
    band = dataset.GetRasterBand(1)
    names = [dataset.GetRasterBand(i + 1).GetDescription() for i in range(dataset.RasterCount)]
    return (array[np.newaxis] if array.ndim == 2 else array), band.GetNoDataValue(), names


def masked_of(values, nodata):
    """The nodata rule written out: NaN/inf anywhere, all zeros, or the noData value."""
    masked = ~np.isfinite(values).all(axis=0) | ~(values != 0).any(axis=0)
    if nodata is not None and math.isfinite(nodata) and nodata != 0:
        masked |= (values == nodata).any(axis=0)
    return masked


def pieces_mosaic(ee, variant):
    """The export put together from its pieces at their row/col offsets: (float32 values, masked)."""
    rows, cols = ee["shape"]
    values = np.zeros((64, rows, cols), dtype=np.float32)
    masked = np.zeros((rows, cols), dtype=bool)
    for path, (row, col) in zip(ee["pieces"][variant], ee["piece_offsets"][variant]):
        stored, nodata, names = read_gdal(path)
        assert names == list(fx.BAND_NAMES)
        values[:, row : row + stored.shape[1], col : col + stored.shape[2]] = stored.astype(np.float32)
        masked[row : row + stored.shape[1], col : col + stored.shape[2]] = masked_of(stored, nodata)
    return values, masked


def assert_equals_the_pieces(loaded, expected, masked):
    assert loaded.types == {"Float32"} and set(loaded.nodata) == {NODATA}
    assert np.all(loaded.values[:, masked] == NODATA), "masked pixels must be nodata"
    assert not np.any(loaded.values[:, ~masked] == NODATA), "unmasked pixels must be valid"
    np.testing.assert_array_equal(loaded.values[:, ~masked], expected[:, ~masked])


# --- Earth Engine exports --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", list(fx.VARIANTS))
@pytest.mark.parametrize("product", ["auto", "aef"])
def test_a_folder_of_export_pieces_loads_as_one_raster_on_their_grid(ee, tmp_path, variant, product):
    loaded = load(tmp_path, "export.tif", product=product, source=str(ee["piece_dirs"][variant]))
    assert loaded.result.product == "aef" and loaded.metadata["GEOEMBED_PRODUCT"] == "aef"
    assert loaded.geotransform == ee["geotransform"]
    assert (loaded.height, loaded.width) == ee["shape"] and loaded.epsg == 32631
    assert loaded.band_names == list(fx.BAND_NAMES)
    expected, masked = pieces_mosaic(ee, variant)
    row0, row1, col0, col1 = fx.MASK_BOX
    assert masked[row0:row1, col0:col1].all() and masked.sum() == (row1 - row0) * (col1 - col0)
    assert_equals_the_pieces(loaded, expected, masked)
    assert EXPORT_NAME in loaded.metadata["GEOEMBED_PRODUCT_NAME"]
    assert "already de-quantised" in loaded.metadata["GEOEMBED_DEQUANTIZATION"]
    assert "127.5" not in loaded.metadata["GEOEMBED_DEQUANTIZATION"]
    assert loaded.metadata["GEOEMBED_YEAR"] == "2024"
    assert sorted(os.path.basename(s) for s in loaded.result.provenance.sources) == sorted(
        os.path.basename(p) for p in ee["pieces"][variant]
    )
    if product == "auto":
        line = next(m for m in loaded.log.infos if "PRODUCT=auto" in m)
        assert "Earth Engine export" in line and "(aef)" in line, line


def test_export_values_are_never_de_quantised_again(ee, tmp_path):
    """The stored floats come out as they are: what ((q/127.5)**2)*sign(q) of them would give is something else."""
    loaded = load(tmp_path, "export.tif", source=str(ee["piece_dirs"]["float64-zeros"]))
    stored, _, _ = read_gdal(ee["pieces"]["float64-zeros"][0])
    np.testing.assert_array_equal(loaded.values[:, 10, 10], stored[:, 10, 10].astype(np.float32))
    assert not np.allclose(loaded.values[:, 10, 10], dequant_formula(stored[:, 10, 10]), atol=1e-3)
    norms = np.linalg.norm(loaded.values[:, :200, :200].astype(np.float64), axis=0)
    np.testing.assert_allclose(norms, 1.0, atol=1e-5)


def test_one_piece_loads_alone_and_an_extent_cuts_the_mosaic_on_its_grid(ee, tmp_path):
    piece = ee["pieces"]["float32-nan"][1]  # rows 0.., cols 256..
    loaded = load(tmp_path, "piece.tif", source=str(piece))
    stored, _, _ = read_gdal(piece)
    assert loaded.geotransform == gdal.Open(str(piece)).GetGeoTransform()
    assert loaded.values.shape == stored.shape
    masked = masked_of(stored, None)
    assert masked.any()
    assert_equals_the_pieces(loaded, stored.astype(np.float32), masked)
    # an extent across the four pieces, in lon/lat: the output stays on the pieces' grid and CRS
    x0, y0 = fx.ORIGIN
    west, north = to_lonlat(fx.CRS, x0 + 2000, y0 - 2000)
    east, south = to_lonlat(fx.CRS, x0 + 2700, y0 - 2650)
    cut = load(tmp_path, "cut.tif", source=str(ee["piece_dirs"]["float32-nodata"]), extent=(west, south, east, north))
    assert cut.epsg == 32631
    c, a, _, f, _, e = cut.geotransform
    col0, row0 = (c - x0) / 10.0, (y0 - f) / 10.0
    assert col0 == int(col0) and row0 == int(row0) and (a, e) == (10.0, -10.0)
    whole, masked = pieces_mosaic(ee, "float32-nodata")
    rows, cols = slice(int(row0), int(row0) + cut.height), slice(int(col0), int(col0) + cut.width)
    assert_equals_the_pieces(cut, whole[:, rows, cols], masked[rows, cols])


def test_a_piece_over_http_loads_with_auto(ee, tmp_path):
    piece = ee["pieces"]["float64-zeros"][0]
    with RangeServer(os.path.dirname(piece)) as server:
        loaded = load(tmp_path, "remote.tif", source=f"{server.url}/{os.path.basename(piece)}")
    assert loaded.result.product == "aef"
    stored, _, _ = read_gdal(piece)
    assert_equals_the_pieces(loaded, stored.astype(np.float32), masked_of(stored, None))


def test_the_plain_float32_geotiff_with_nan_nodata(ee, tmp_path):
    loaded = load(tmp_path, "plain.tif", source=str(ee["plain"]))
    assert loaded.result.product == "aef" and EXPORT_NAME in loaded.metadata["GEOEMBED_PRODUCT_NAME"]
    assert loaded.epsg == 4326 and loaded.geotransform == gdal.Open(str(ee["plain"])).GetGeoTransform()
    stored, nodata, _ = read_gdal(ee["plain"])
    assert nodata is not None and math.isnan(nodata)
    masked = masked_of(stored, nodata)
    row0, row1, col0, col1 = fx.PLAIN_NAN_BOX
    assert masked.sum() == (row1 - row0) * (col1 - col0)
    assert_equals_the_pieces(loaded, stored, masked)


def test_pieces_named_like_aef_tiles_are_told_apart_by_their_data_type(ee, tmp_path):
    """Raw tiles are x{16}-{10 digits}-{10 digits}.tiff; an export whose prefix looks like an EEID is still floats."""
    folder = tmp_path / "2024" / "31N"
    folder.mkdir(parents=True)
    renamed = folder / "x0123456789abcdef-0000000000-0000000000.tiff"
    shutil.copy(ee["pieces"]["float64-zeros"][0], renamed)
    loaded = load(tmp_path / "out", "renamed.tif", source=str(tmp_path / "2024"))
    stored, _, _ = read_gdal(renamed)
    assert loaded.result.product == "aef" and EXPORT_NAME in loaded.metadata["GEOEMBED_PRODUCT_NAME"]
    assert_equals_the_pieces(loaded, stored.astype(np.float32), masked_of(stored, None))


def test_int8_tiles_keep_their_path(aef_mirror, aef_specs, tmp_path):
    """A raw AEF tile is still de-quantised with the published formula and named as before."""
    spec = next(s for s in aef_specs if s.year == 2024 and s.zone == "32N")
    path = aef_mirror / "v1" / "annual" / spec.relative_path
    loaded = load(tmp_path, "raw.tif", source=str(path))
    assert loaded.result.product == "aef"
    assert loaded.metadata["GEOEMBED_PRODUCT_NAME"] == "AlphaEarth Foundations Satellite Embedding V1 (annual)"
    assert "South-up int8" in loaded.metadata["GEOEMBED_NOTES"]
    codes = raw_codes(path)[:, ::-1, :]  # stored south-up
    np.testing.assert_allclose(loaded.values, dequant_formula(codes).astype(np.float32), rtol=0, atol=1e-7)


def test_a_folder_mixing_int8_tiles_and_float_exports_is_refused(aef_mirror, aef_specs, ee, tmp_path):
    spec = next(s for s in aef_specs if s.year == 2024 and s.zone == "32N")
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(aef_mirror / "v1" / "annual" / spec.relative_path, folder / spec.name)
    shutil.copy(ee["pieces"]["float32-nan"][0], folder / f"x{'a' * 16}-0000000000-0000000000.tif")
    message = load_error(tmp_path / "out", product="aef", source=str(folder))
    assert "int8" in message and "float" in message


def test_a_geoembed_output_is_not_taken_for_an_export(ee, tmp_path):
    first = load(tmp_path, "first.tif", source=str(ee["plain"]))
    message = load_error(tmp_path / "out", product="aef", source=first.path)
    assert "GeoEmbed" in message and "INPUT" in message and "Float32" in message
    again = load(tmp_path, "again.tif", source=first.path)  # PRODUCT=auto: any raster, as it is
    assert again.result.product == "generic"
    np.testing.assert_array_equal(again.values, first.values)
    assert again.band_names == list(fx.BAND_NAMES)


# --- Major TOM's copy ------------------------------------------------------------------------------------------------


def _cell_patch_centres(cell, margin=3):
    """Patch centres (lon, lat) at least `margin` pixels inside a Major TOM cell and away from patch edges."""
    x0, res, _, y0, _, _ = cell["geotransform"]
    crs = f"EPSG:{cell['epsg']}"
    xs, ys = np.meshgrid(x0 + res * (np.arange(fx.CELL_COLS) + 0.5), y0 - res * (np.arange(fx.CELL_ROWS) + 0.5))
    lon, lat = to_lonlat(crs, xs, ys)
    inner = np.zeros(xs.shape, dtype=bool)
    inner[margin:-margin, margin:-margin] = True
    fx_, fy = np.asarray(lon) / PATCH_DEG % 1.0, np.asarray(lat) / PATCH_DEG % 1.0
    clear = inner & (np.abs(fx_ - 0.5) < 0.3) & (np.abs(fy - 0.5) < 0.3)  # 20 % of a patch away from its edges
    return list(zip(np.asarray(lon)[clear][::7], np.asarray(lat)[clear][::7]))


@pytest.mark.parametrize("product", ["auto", "aef"])
def test_major_tom_copy_mosaics_cells_of_two_zones(ee, tmp_path, product):
    loaded = load(tmp_path, "mt.tif", product=product, source=str(ee["major_tom_dir"]))
    assert loaded.result.product == "aef" and MAJOR_TOM_NAME in loaded.metadata["GEOEMBED_PRODUCT_NAME"]
    assert loaded.metadata["GEOEMBED_YEAR"] == "2024" and loaded.epsg == 32631  # the zone of the cells' centre
    assert any("YEAR not set" in message for message in loaded.log.infos)
    names = sorted(os.path.basename(s) for s in loaded.result.provenance.sources)
    assert names == ["500U_46R.tif", "500U_48R.tif"]
    checked = {32631: 0, 32632: 0}
    for cell in (c for c in ee["cells"] if c["year"] == 2024):
        for lon, lat in _cell_patch_centres(cell):
            vector = loaded.at_lonlat(lon, lat)
            np.testing.assert_allclose(vector, fx.value_at(lon, lat, 2024), rtol=0, atol=1e-6, err_msg=f"{lon}, {lat}")
            checked[cell["epsg"]] += 1
    assert min(checked.values()) >= 10, checked
    if product == "auto":
        line = next(m for m in loaded.log.infos if "PRODUCT=auto" in m)
        assert "Major TOM" in line and "(aef)" in line, line


def test_major_tom_copy_year_filter(ee, tmp_path):
    loaded = load(tmp_path, "mt2023.tif", source=str(ee["major_tom_dir"]), year=2023)
    assert loaded.metadata["GEOEMBED_YEAR"] == "2023"
    assert [os.path.relpath(s, ee["major_tom_dir"]) for s in loaded.result.provenance.sources] == [
        os.path.join("2023", "U", "0", "R", "6", "500U_46R.tif")
    ]
    cell = next(c for c in ee["cells"] if c["year"] == 2023)
    points = _cell_patch_centres(cell)
    assert len(points) >= 10
    for lon, lat in points:
        expected = fx.value_at(lon, lat, 2023)
        np.testing.assert_allclose(loaded.at_lonlat(lon, lat), expected, rtol=0, atol=1e-6)
        assert not np.allclose(expected, fx.value_at(lon, lat, 2024), atol=1e-3), "test design: the years must differ"
    load_error(tmp_path / "out", source=str(ee["major_tom_dir"]), year=2019)


# --- the generic product ---------------------------------------------------------------------------------------------


def _generic_expected(path):
    stored, nodata, _ = read_gdal(path)
    if stored.dtype == np.uint8:  # GDAL < 3.7: signed bytes come back as uint8
        stored = stored.view(np.int8)
    return stored.astype(np.float32), masked_of(stored.astype(np.float64), nodata)


@pytest.mark.parametrize("key", ["int16", "vrt", "tiles_dir"])
@pytest.mark.parametrize("product", ["auto", "generic"])
def test_generic_int16_raster_vrt_and_folder(ee, tmp_path, key, product):
    loaded = load(tmp_path, "generic.tif", product=product, source=str(ee["generic"][key]))
    assert loaded.result.product == "generic" and loaded.metadata["GEOEMBED_PRODUCT"] == "generic"
    assert loaded.band_names == list(fx.GENERIC_NAMES)
    assert loaded.geotransform == ee["generic"]["geotransform"] and loaded.epsg == 32631
    expected, masked = _generic_expected(ee["generic"]["int16"])
    row0, row1, col0, col1 = fx.GENERIC_NODATA_BOX
    assert masked.sum() == (row1 - row0) * (col1 - col0)
    np.testing.assert_array_equal(expected, fx.generic_int16().astype(np.float32))
    assert_equals_the_pieces(loaded, expected, masked)
    assert "raw stored values" in loaded.metadata["GEOEMBED_NOTES"]
    if product == "auto":
        line = next(m for m in loaded.log.infos if "PRODUCT=auto" in m)
        assert "(generic)" in line and "Int16" in line, line


def test_generic_signed_bytes_are_read_as_signed(ee, tmp_path):
    loaded = load(tmp_path, "int8.tif", source=str(ee["generic"]["int8"]))
    assert loaded.result.product == "generic"
    assert loaded.band_names == [f"B{i:02d}" for i in range(1, 17)]
    expected = fx.generic_int8().astype(np.float32)
    assert (expected < 0).mean() > 0.2, "test design: many negative components"
    assert_equals_the_pieces(loaded, expected, ~(expected != 0).any(axis=0))


def test_generic_float_raster_in_another_crs_keeps_its_pixel_size(ee, tmp_path):
    """CRS set, RESOLUTION not: the native resolution is the file's pixel in metres (20 m), put into degrees."""
    loaded = load(tmp_path, "lonlat.tif", product="generic", source=str(ee["generic"]["int16"]), crs="EPSG:4326")
    assert loaded.epsg == 4326
    assert loaded.geotransform[1] == pytest.approx(20.0 / 111_320.0, rel=1e-9)
    assert not np.all(loaded.values == NODATA)


@pytest.mark.parametrize("product", ["auto", "generic"])
def test_a_one_band_raster_is_refused_in_one_line(ee, tmp_path, product):
    message = load_error(tmp_path / "out", product=product, source=str(ee["generic"]["one_band"]))
    assert "one_band.tif" in message and "1 band" in message


def test_a_folder_of_rasters_with_other_band_counts_is_refused(ee, tmp_path):
    folder = tmp_path / "two"
    folder.mkdir()
    shutil.copy(ee["generic"]["int16"], folder / "a.tif")
    shutil.copy(ee["plain"], folder / "b.tif")
    message = load_error(tmp_path / "out", product="generic", source=str(folder))
    assert "bands" in message and "a.tif" in message and "b.tif" in message


def test_auto_tries_the_specific_products_first(ee, products):
    """Every product's own files still go to that product; the generic product takes what is left."""
    assert detect_product(str(products["presto"]["path"]))[0] == "presto"
    assert detect_product(str(products["copernicus-embed"]["tif"]))[0] == "copernicus-embed"
    assert detect_product(str(products["tessera"]["geotiff"]))[0] == "tessera"
    assert detect_product(str(ee["plain"]))[0] == "aef"
    found, reason = detect_product(str(ee["generic"]["int16"]))
    assert found == "generic" and "16 Int16 bands" in reason


def test_a_file_that_is_no_raster_is_still_unrecognised(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not an embedding\n")
    with pytest.raises(GeoEmbedError) as info:
        detect_product(str(text))
    assert "generic" in assert_one_line(info.value)


# --- Tessera water: nodata on both paths -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tessera(products):
    return products["tessera"]


def _export_tile(tessera):
    info = next(t for t in tessera["tiles"] if "geotiff" in t)
    return info, next(t for t in tess_fx.TILES if t.name == info["name"])


def test_tessera_export_water_is_nodata_with_its_landmask(tessera, tmp_path):
    info, tile = _export_tile(tessera)
    q, scales, land = tess_fx.tile_arrays(tile, blank_water=False)
    assert (land == 0).any() and np.isfinite(scales[land == 0]).all(), "test design: finite values over water"
    for source in (tessera["geotiff_landmasks_dir"], tessera["geotiff_finite_water"]):
        loaded = load(tmp_path, "water.tif", product="tessera", source=str(source))
        expected = np.moveaxis(tess_fx.dequantise(q, scales), -1, 0).astype(np.float32)
        expected[:, land == 0] = NODATA
        np.testing.assert_allclose(loaded.values, expected, rtol=1e-6, atol=1e-7)
        assert not loaded.log.warnings


def test_tessera_export_without_its_landmask_keeps_water_and_warns_once(tessera, tmp_path):
    info, tile = _export_tile(tessera)
    alone = tmp_path / "alone" / "2024" / "exports"
    alone.mkdir(parents=True)
    shutil.copy(tessera["geotiff_finite_water"], alone)
    loaded = load(tmp_path, "kept.tif", product="tessera", source=str(tmp_path / "alone"))
    q, scales, land = tess_fx.tile_arrays(tile, blank_water=False)
    expected = np.moveaxis(tess_fx.dequantise(q, scales), -1, 0).astype(np.float32)
    np.testing.assert_allclose(loaded.values, expected, rtol=1e-6, atol=1e-7)
    assert not np.any(loaded.values == NODATA)
    assert len(loaded.log.warnings) == 1 and "landmask" in loaded.log.warnings[0], loaded.log.warnings


def test_tessera_npy_water_is_nodata(tessera, tmp_path):
    """The .npy path: the same tile's water is nodata (the rule is one for both paths)."""
    info, tile = _export_tile(tessera)
    loaded = load(tmp_path, "npy.tif", product="tessera", source=str(info["npy"]))
    _, _, land = tess_fx.tile_arrays(tile)
    assert np.all(loaded.values[:, land == 0] == NODATA) and not np.any(loaded.values[:, land != 0] == NODATA)
