"""geoembed:load at the write floor: the faster de-quantisation and writer give today's Float32 values bit for bit, and
OUTPUT_TYPE=int16 (AlphaEarth) stores q*|q| with band scale 1/127.5**2 that reads back as the same values."""

import numpy as np
import pytest
from osgeo import gdal

from geoembed.loaders.errors import GeoEmbedError
from geoembed.loaders.load import LoadRequest, run
from geoembed.loaders.products import aef
from geoembed.loaders.raster import writer
from geoembed.loaders.raster.embedding_tiff import EmbeddingTiff
from geoembed.loaders.raster.scaled_int16 import INT16_NODATA, INT16_SCALE, term_values
from tests.fixtures import ee_export
from tests.unit.helpers import assert_one_line, dequant_formula, find_spec, raw_codes, tile_path

ALL_CODES = np.arange(-128, 128, dtype=np.int16).astype(np.int8)
BEFORE = (dequant_formula(ALL_CODES)).astype(np.float32)  # the LUT the loader used before: float64 formula -> float32
NODATA = -9999.0


class Quiet:
    def info(self, message):
        pass

    warning = info


def bits(array):
    return np.asarray(array, dtype=np.float32).view(np.uint32)


def test_every_code_dequantises_to_the_same_float32_bits_as_before():
    np.testing.assert_array_equal(bits(aef.dequantize(ALL_CODES)), bits(BEFORE))
    np.testing.assert_array_equal(bits(aef.DEQUANT_LUT[ALL_CODES.view(np.uint8)]), bits(BEFORE))


def test_every_int16_term_reads_back_as_the_float32_value_whoever_applies_the_scale():
    terms = ALL_CODES.astype(np.int32) * np.abs(ALL_CODES.astype(np.int32))
    assert terms.min() >= -16384 and terms.max() <= 16384 and terms.min() > INT16_NODATA
    np.testing.assert_array_equal(bits(term_values(terms.astype(np.int16))), bits(BEFORE))  # GeoEmbed's reader
    np.testing.assert_array_equal(bits((terms * INT16_SCALE).astype(np.float32)), bits(BEFORE))  # GDAL / QGIS: double


def _load(tmp_path, name, **request):
    path = tmp_path / name
    run(LoadRequest(output=str(path), product="aef", **request), log=Quiet())
    return path


@pytest.fixture(scope="module")
def tile(aef_mirror, aef_specs):
    spec = find_spec(aef_specs, 2024, "31N")
    assert spec.nodata_boxes
    return tile_path(aef_mirror, spec)


@pytest.fixture(scope="module")
def whole_tile(tile, tmp_path_factory):
    """The fixture tile (with a nodata box) loaded whole, as Float32 and as Int16."""
    out = tmp_path_factory.mktemp("whole-tile")
    return _load(out, "f.tif", source=str(tile)), _load(out, "i.tif", source=str(tile), output_type="int16")


def test_whole_tile_float32_is_todays_output_bit_for_bit(tile, whole_tile):
    codes = raw_codes(tile)[:, ::-1]  # south-up tile, north-up output
    expected = dequant_formula(codes).astype(np.float32)
    expected[:, (codes == -128).any(axis=0)] = NODATA
    dataset = gdal.Open(str(whole_tile[0]))
    assert dataset.GetRasterBand(1).DataType == gdal.GDT_Float32
    assert dataset.GetRasterBand(1).GetScale() in (None, 1.0)
    np.testing.assert_array_equal(bits(dataset.ReadAsArray()), bits(expected))


def test_int16_file_stores_the_terms_with_the_band_scale_and_nodata(tile, whole_tile):
    codes = raw_codes(tile)[:, ::-1].astype(np.int32)
    nodata = (codes == -128).any(axis=0)
    dataset = gdal.Open(str(whole_tile[1]))
    for index in range(1, 65):
        band = dataset.GetRasterBand(index)
        assert band.DataType == gdal.GDT_Int16
        assert (band.GetScale(), band.GetOffset(), band.GetNoDataValue()) == (INT16_SCALE, 0.0, INT16_NODATA)
        assert band.GetDescription() == f"A{index - 1:02d}"
    stored = dataset.ReadAsArray()
    expected = codes * np.abs(codes)
    expected[:, nodata] = INT16_NODATA
    np.testing.assert_array_equal(stored, expected)
    assert "Int16" in dataset.GetMetadataItem("GEOEMBED_NOTES") and "Float32" in dataset.GetMetadataItem("GEOEMBED_NOTES")


def test_int16_reads_back_as_the_float32_values_in_geoembed_and_in_gdal(whole_tile):
    floats, ints = (EmbeddingTiff(str(path)) for path in whole_tile)
    try:
        nodata_pixels = 0
        for window in floats.grid.blocks(64):
            a, b = floats.read(window), ints.read(window)
            np.testing.assert_array_equal(a.valid, b.valid)
            np.testing.assert_array_equal(bits(a.values[:, a.valid]), bits(b.values[:, b.valid]))
            nodata_pixels += (~a.valid).sum()
        assert nodata_pixels > 0
    finally:
        floats.close()
        ints.close()
    # GDAL's own unscaling (gdal_translate -unscale -ot Float32), as tools that honour band scales see the file
    unscaled = gdal.Translate("/vsimem/unscaled.tif", str(whole_tile[1]), outputType=gdal.GDT_Float32, unscale=True)
    got = unscaled.ReadAsArray()
    unscaled = None
    gdal.Unlink("/vsimem/unscaled.tif")
    want = gdal.Open(str(whole_tile[0])).ReadAsArray()
    valid = want[0] != NODATA
    np.testing.assert_array_equal(bits(got[:, valid]), bits(want[:, valid]))


def test_int16_equals_float32_across_zones_and_reprojection(aef_mirror, tmp_path):
    """Blocks pieced together from several tiles (31N and 32N, reprojected) take the float path back to the terms."""
    request = {"source": str(aef_mirror), "year": 2024, "extent": (5.975, 44.99, 6.02, 45.02), "crs": "EPSG:32632"}
    floats = EmbeddingTiff(str(_load(tmp_path, "f.tif", **request)))
    ints = EmbeddingTiff(str(_load(tmp_path, "i.tif", output_type="int16", **request)))
    try:
        whole = next(floats.grid.blocks(10**6))
        a, b = floats.read(whole), ints.read(whole)
        assert a.valid.any() and not a.valid.all()
        np.testing.assert_array_equal(a.valid, b.valid)
        np.testing.assert_array_equal(bits(a.values[:, a.valid]), bits(b.values[:, b.valid]))
    finally:
        floats.close()
        ints.close()


@pytest.mark.parametrize(
    "product, output_type, words",
    [
        ("tessera", "int16", ["int16", "AlphaEarth", "float32"]),
        ("aef", "uint8", ["OUTPUT_TYPE", "float32", "int16"]),
    ],
)
def test_refusals_are_one_line_and_write_nothing(tmp_path, tile, product, output_type, words):
    out = tmp_path / "o.tif"
    with pytest.raises(GeoEmbedError) as error:
        run(LoadRequest(output=str(out), product=product, source=str(tile), output_type=output_type), log=Quiet())
    assert_one_line(error.value)
    assert all(word in str(error.value) for word in words), str(error.value)
    assert list(tmp_path.iterdir()) == []


def test_int16_refused_for_float_alphaearth(tmp_path):
    """Float AlphaEarth (an Earth Engine export) holds values off the q*|q| lattice: no exact int16 for it."""
    source = ee_export.write_plain(tmp_path / "src" / ee_export.PLAIN_NAME)
    out = tmp_path / "out"
    with pytest.raises(GeoEmbedError) as error:
        run(LoadRequest(output=str(out / "o.tif"), product="aef", source=str(source), output_type="int16"), log=Quiet())
    assert_one_line(error.value)
    assert "float32" in str(error.value)
    assert not out.exists() or list(out.iterdir()) == []


def test_embedding_outputs_have_no_predictor_other_outputs_keep_theirs():
    """Quantised embeddings take few distinct float values: ZSTD alone packs them smaller and faster."""
    assert writer.EMBEDDING_PREDICTOR == 1
    assert "PREDICTOR=3" in writer.creation_options(gdal.GDT_Float32)  # heatmaps and distances: smooth floats
    assert "PREDICTOR=2" in writer.creation_options(gdal.GDT_Byte)
    assert "PREDICTOR=1" in writer.creation_options(gdal.GDT_Float32, writer.EMBEDDING_PREDICTOR)


def test_embedding_write_passes_the_predictor_and_scale_to_gdal(tmp_path, monkeypatch, tile):
    created = []
    original = writer.creation_options
    monkeypatch.setattr(writer, "creation_options", lambda *args: created.append(args) or original(*args))
    _load(tmp_path, "i.tif", source=str(tile), output_type="int16")
    assert created == [(gdal.GDT_Int16, 1)]
