"""GDAL access gives the same results and one-line errors whether GDAL raises exceptions or returns None.

GDAL's Python bindings return None on failure unless something called gdal.UseExceptions(); QGIS 3.44's Processing
plugin does that for the whole process (and GDAL 4 will by default). GDAL 3.7+ then raises RuntimeError with all its
messages over several lines ("...\\nMay be caused by: ...") and no longer calls the pushed error handlers; GDAL 3.13
also turns on exceptions in osr. Every case here runs both ways, on the same GDAL, and must come out the same.
"""

import shutil
from contextlib import contextmanager

import numpy as np
import pytest
from osgeo import gdal, ogr, osr

from geoembed.loaders.errors import GeoEmbedError
from geoembed.loaders.raster import gdal_io
from geoembed.loaders.raster.embedding_tiff import EmbeddingTiff
from geoembed.loaders.raster.gdal_io import crs_string, crs_wkt, open_raster, read_window
from tests.unit.conftest import load, load_error
from tests.unit.helpers import assert_one_line

MODULES = (gdal, osr, ogr)


def _set_exceptions(wanted):
    """GDAL < 3.7 keeps the modules' exception settings on one stack: undo them last first, then set them again."""
    for module in reversed(MODULES):
        if module.GetUseExceptions():
            module.DontUseExceptions()
    for module, on in zip(MODULES, wanted):
        if on:
            module.UseExceptions()


@contextmanager
def gdal_exceptions(on):
    """GDAL (and osr, ogr, as GDAL 3.13's UseExceptions does) raising or not; the previous setting afterwards."""
    before = [bool(module.GetUseExceptions()) for module in MODULES]
    _set_exceptions([on] * len(MODULES))
    try:
        yield
    finally:
        _set_exceptions(before)


def outcome(function):
    """("ok", value) or (error class name, message) of function()."""
    try:
        return "ok", function()
    except GeoEmbedError as error:
        return type(error).__name__, str(error)


def both_ways(function):
    """outcome(function) with GDAL exceptions off, then on; asserts they are the same and returns it."""
    with gdal_exceptions(False):
        off = outcome(function)
    with gdal_exceptions(True):
        on = outcome(function)
    assert on == off, f"exceptions off: {off}\nexceptions on: {on}"
    return off


def write_tiled_tiff(path, bands=3, size=512, epsg=32631, wkt=None):
    """A tiled, compressed Float32 GeoTIFF of random values (compressed tiles make a cut-short file fail to read)."""
    values = np.random.default_rng(7).random((bands, size, size), dtype=np.float32)
    options = ["TILED=YES", "COMPRESS=DEFLATE"]
    dataset = gdal.GetDriverByName("GTiff").Create(str(path), size, size, bands, gdal.GDT_Float32, options)
    dataset.SetGeoTransform((500000.0, 10.0, 0.0, 5000000.0, 0.0, -10.0))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg) if wkt is None else srs.ImportFromWkt(wkt)
    dataset.SetProjection(srs.ExportToWkt())
    dataset.SetMetadata({"GEOEMBED_PRODUCT": "generic"})
    for index in range(bands):
        dataset.GetRasterBand(index + 1).WriteArray(values[index])
    dataset = None
    return path, values


def cut_short(path, into, fraction=0.5):
    data = path.read_bytes()
    into.write_bytes(data[: int(len(data) * fraction)])
    return into


# --- GDAL's messages ---------------------------------------------------------------------------------


def test_messages_of_a_gdal_exception_come_first_one_first_on_one_line_each():
    error = RuntimeError(
        "x.tif, band 2: IReadBlock failed\nMay be caused by: TIFFReadEncodedTile() failed.\n"
        "May be caused by: TIFFFillTile:Read error  at row 0"
    )
    assert gdal_io.exception_messages(error) == [
        "TIFFFillTile:Read error at row 0",
        "TIFFReadEncodedTile() failed.",
        "x.tif, band 2: IReadBlock failed",
    ]
    assert gdal_io.exception_messages(RuntimeError("one message")) == ["one message"]


def test_gdal_call_gives_none_and_the_messages_either_way(tmp_path):
    missing = str(tmp_path / "missing.tif")
    with gdal_exceptions(False):
        off = gdal_io.gdal_call(gdal.Open, missing)
    with gdal_exceptions(True):
        on = gdal_io.gdal_call(gdal.Open, missing)
    assert off == on
    assert off[0] is None and len(off[1]) == 1 and missing in off[1][0]


def test_gdal_call_leaves_the_exception_setting_as_it_was(tmp_path):
    for on in (False, True):
        with gdal_exceptions(on):
            gdal_io.gdal_call(gdal.Open, str(tmp_path / "missing.tif"))
            assert gdal.GetUseExceptions() == on


# --- opening ------------------------------------------------------------------------------------------


def test_a_missing_raster(tmp_path):
    path = tmp_path / "missing.tif"
    kind, message = both_ways(lambda: open_raster(str(path)))
    assert kind == "GeoEmbedError" and assert_one_line(message).startswith(f"Cannot open raster {path}: ")


@pytest.mark.parametrize("name", ["notes.tif", "chips.gpq"])
def test_a_file_gdal_does_not_recognise(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"PAR1" + bytes(200) + b"PAR1" if name.endswith(".gpq") else b"this is not a GeoTIFF\n")
    kind, message = both_ways(lambda: open_raster(str(path)))
    assert kind == "GeoEmbedError" and assert_one_line(message).startswith(f"Cannot open raster {path}: ")
    assert "not recognized as" in message


# --- reading --------------------------------------------------------------------------------------------


@pytest.fixture()
def cut_tiff(tmp_path):
    full, _ = write_tiled_tiff(tmp_path / "full.tif")
    return cut_short(full, tmp_path / "truncated.tif")


def test_reading_a_cut_short_raster(cut_tiff):
    def read():
        return read_window(open_raster(str(cut_tiff)), str(cut_tiff), 0, 0, 512, 512)

    kind, message = both_ways(read)
    assert kind == "GeoEmbedError" and assert_one_line(message).startswith(f"Cannot read {cut_tiff}: ")
    assert message.endswith("; check the file or your connection.")
    assert "truncated.tif, band" not in message  # GDAL 3.13 puts the file's name first: said once is enough


def test_a_decimated_read_of_a_cut_short_embedding_raster(cut_tiff):
    kind, message = both_ways(lambda: EmbeddingTiff(str(cut_tiff)).read_decimated(64))
    assert kind == "GeoEmbedError" and assert_one_line(message).startswith(f"Cannot read {cut_tiff}: ")


@pytest.mark.parametrize("on", [False, True])
def test_good_reads(tmp_path, on):
    path, values = write_tiled_tiff(tmp_path / "good.tif")
    with gdal_exceptions(on):
        window = read_window(open_raster(str(path)), str(path), 100, 200, 50, 60)
        block, grid = EmbeddingTiff(str(path)).read_decimated(128)
    np.testing.assert_array_equal(window, values[:, 200:260, 100:150])
    assert (grid.width, grid.height, grid.res_x) == (128, 128, 40.0)
    np.testing.assert_array_equal(block.values, values[:, 2::4, 2::4])  # nearest: the pixel at each block's centre


# --- coordinate reference systems ----------------------------------------------------------------------

OBLIQUE_MERCATOR = "+proj=omerc +lat_0=45 +lonc=7 +alpha=30 +k=1 +x_0=0 +y_0=0 +datum=WGS84 +units=m +no_defs"


def test_a_crs_without_an_epsg_code_is_given_as_wkt(tmp_path):
    srs = osr.SpatialReference()
    srs.ImportFromProj4(OBLIQUE_MERCATOR)
    path, _ = write_tiled_tiff(tmp_path / "omerc.tif", size=32, wkt=srs.ExportToWkt())
    kind, crs = both_ways(lambda: crs_string(gdal.Open(str(path))))
    assert kind == "ok" and not crs.startswith("EPSG:")
    assert osr.SpatialReference(wkt=crs).IsSame(srs)


def test_crs_strings(tmp_path):
    path, _ = write_tiled_tiff(tmp_path / "utm.tif", size=32)
    assert both_ways(lambda: crs_string(gdal.Open(str(path)))) == ("ok", "EPSG:32631")
    kind, message = both_ways(lambda: crs_wkt("no such crs"))
    assert (kind, message) == ("GeoEmbedError", "Unknown CRS 'no such crs'; give an EPSG code such as EPSG:32631.")


# --- whole loads ----------------------------------------------------------------------------------------


def test_a_clay_geoparquet_loads_with_product_auto(products, tmp_path):
    source = str(products["clay"]["files"]["v0"]["path"])
    with gdal_exceptions(False):
        off = load(tmp_path / "off", "clay.tif", product="auto", source=source)
    with gdal_exceptions(True):
        on = load(tmp_path / "on", "clay.tif", product="auto", source=source)
    assert off.result.product == on.result.product == "clay"
    assert (on.geotransform, on.epsg) == (off.geotransform, off.epsg)
    np.testing.assert_array_equal(on.values, off.values)


@pytest.mark.parametrize("product", ["aef", "auto"])
def test_a_cut_short_aef_tile(aef_mirror, tmp_path, product):
    tile = next(aef_mirror.glob("v1/annual/2024/31N/*.tiff"))
    copy = tmp_path / "mirror" / "v1" / "annual" / "2024" / "31N" / tile.name
    copy.parent.mkdir(parents=True)
    cut_short(tile, copy)
    messages = []
    for on in (False, True):
        with gdal_exceptions(on):
            messages.append(load_error(tmp_path / f"out-{on}", product=product, source=str(copy)))
    assert messages[0] == messages[1]
    assert tile.name in messages[0] and "please report" not in messages[0]
    shutil.rmtree(tmp_path / "mirror")
