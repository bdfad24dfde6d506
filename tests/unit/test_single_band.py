"""loaders.raster.single_band: one-band rasters (heatmaps, class maps) read in their own data type with nodata, class
names (category names, an .aux.xml sidecar, GEOEMBED_CLASSES) and colours; anything else refused in one line.

The rasters are written here with GDAL from arrays the tests know."""

import numpy as np
import pytest
from osgeo import gdal, osr

from geoembed.loaders.errors import GeoEmbedError
from geoembed.loaders.raster.grid import Window
from geoembed.loaders.raster.single_band import SingleBandRaster, open_class_map
from tests.unit.helpers import assert_one_line

UTM = (500000.0, 10.0, 0.0, 5000000.0, 0.0, -10.0)
CLASSES = np.array([[0, 1, 2, 3], [3, 2, 1, 0], [1, 1, 300, 2]])


def write(path, values, data_type=gdal.GDT_UInt16, nodata=0, bands=1, geotransform=UTM, epsg=32631, **extra):
    """A GeoTIFF of `values` in every band; extra: names (category names), colours {value: rgb}, meta (dataset)."""
    dataset = gdal.GetDriverByName("GTiff").Create(str(path), values.shape[1], values.shape[0], bands, data_type)
    dataset.SetGeoTransform(geotransform)
    if epsg:
        srs = osr.SpatialReference()
        srs.ImportFromEPSG(epsg)
        dataset.SetProjection(srs.ExportToWkt())
    dataset.SetMetadata({"GEOEMBED_PRODUCT": "aef", "GEOEMBED_YEAR": "2024", **extra.get("meta", {})})
    for index in range(bands):
        band = dataset.GetRasterBand(index + 1)
        if nodata is not None:
            band.SetNoDataValue(nodata)
        band.WriteArray(values)
        if "names" in extra:
            band.SetRasterCategoryNames(extra["names"])
        if "colours" in extra:
            table = gdal.ColorTable()
            for value, rgb in extra["colours"].items():
                table.SetColorEntry(value, (*rgb, 255))
            band.SetRasterColorTable(table)
    dataset = None
    return str(path)


def read_all(raster):
    return raster.read(Window(0, 0, raster.grid.width, raster.grid.height))


def test_values_keep_their_data_type_and_nodata_is_masked(tmp_path):
    raster = SingleBandRaster(write(tmp_path / "c.tif", CLASSES))
    block = read_all(raster)
    assert block.values.shape == (1, 3, 4) and block.values.dtype == np.uint16
    assert np.array_equal(block.values[0], CLASSES)
    assert np.array_equal(block.valid, CLASSES != 0)
    assert raster.band_count == 1 and raster.is_integer and raster.nodata == 0
    assert raster.grid.width == 4 and raster.grid.height == 3 and raster.grid.crs == "EPSG:32631"
    assert raster.provenance.product == "aef" and raster.provenance.year == 2024


def test_float_scores_mask_nan_and_nodata(tmp_path):
    values = np.array([[0.5, np.nan, -9999.0], [0.25, 1.0, np.inf]], np.float32)
    raster = SingleBandRaster(write(tmp_path / "s.tif", values, gdal.GDT_Float32, nodata=-9999.0))
    block = read_all(raster)
    assert block.values.dtype == np.float32 and not raster.is_integer
    assert block.valid.tolist() == [[True, False, False], [True, True, False]]


def test_class_names_and_colours_from_the_category_names_and_colour_table(tmp_path):
    names = ["nodata", "water", "forest", ""]
    colours = {0: (0, 0, 0), 1: (0, 0, 255), 2: (0, 128, 0), 3: (9, 9, 9)}
    raster = open_class_map(write(tmp_path / "c.tif", CLASSES, gdal.GDT_Byte, names=names, colours=colours))
    assert raster.class_names == {1: "water", 2: "forest"}, "the nodata entry and empty names are left out"
    assert raster.colours == {1: (0, 0, 255), 2: (0, 128, 0)}


def test_class_names_from_an_aux_xml_sidecar(tmp_path):
    path = write(tmp_path / "c.tif", CLASSES)
    dataset = gdal.Open(path)  # read-only: GDAL keeps the category names in c.tif.aux.xml
    dataset.GetRasterBand(1).SetRasterCategoryNames(["nodata", "water", "forest", "urban"])
    dataset = None
    assert (tmp_path / "c.tif.aux.xml").exists()
    assert open_class_map(path).class_names == {1: "water", 2: "forest", 3: "urban"}


def test_class_names_from_geoembed_classes_metadata(tmp_path):
    raster = open_class_map(write(tmp_path / "c.tif", CLASSES, meta={"GEOEMBED_CLASSES": "water|forest|urban"}))
    assert raster.class_names == {1: "water", 2: "forest", 3: "urban"}
    assert raster.colours == {}


def test_tolerates_odd_provenance_metadata(tmp_path):
    meta = {"GEOEMBED_YEAR": "n/a", "GEOEMBED_SOURCES": "{not json"}
    raster = SingleBandRaster(write(tmp_path / "c.tif", CLASSES, meta=meta))
    assert raster.provenance.year is None and raster.provenance.sources == []


def _unreadable(folder):
    (folder / "garbage.tif").write_bytes(b"not a raster at all" * 10)
    return str(folder / "garbage.tif")


def _implausible_header(folder):
    path = folder / "huge.vrt"  # a header claiming more pixels than any raster GeoEmbed reads
    path.write_text('<VRTDataset rasterXSize="4000000" rasterYSize="10"><VRTRasterBand dataType="Byte" band="1"/></VRTDataset>')
    return str(path)


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda f: write(f / "emb.tif", CLASSES, bands=3), ["INPUT_2", "emb.tif", "3 bands", "class map"]),
        (lambda f: write(f / "f.tif", CLASSES, gdal.GDT_Float32), ["INPUT_2", "f.tif", "Float32", "whole numbers"]),
        (_unreadable, ["garbage.tif"]),
        (_implausible_header, ["huge.vrt", "4000000"]),
        (lambda f: write(f / "up.tif", CLASSES, geotransform=(0, 10, 0, 0, 0, 10)), ["INPUT_2", "up.tif", "north-up"]),
        (lambda f: write(f / "nocrs.tif", CLASSES, epsg=None), ["INPUT_2", "nocrs.tif", "no CRS"]),
    ],
    ids=["multi-band", "float", "unreadable", "implausible-header", "south-up", "no-crs"],
)
def test_what_is_not_a_class_map_is_refused_in_one_line(tmp_path, make, words):
    path = make(tmp_path)
    with pytest.raises(GeoEmbedError) as caught:
        open_class_map(path, "INPUT_2")
    message = assert_one_line(caught.value)
    assert all(word in message for word in words), message


def test_a_multi_band_raster_opens_as_single_band_for_callers_to_refuse(tmp_path):
    raster = SingleBandRaster(write(tmp_path / "emb.tif", CLASSES, bands=3))
    assert raster.band_count == 3
    raster.close()
