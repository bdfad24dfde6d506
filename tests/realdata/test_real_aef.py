"""A real AlphaEarth (AEF) 10 x 10 clip, south-up as published, loaded with PRODUCT=auto and sampled at points.

Expected values are the file's own int8 codes de-quantised by hand, ((q / 127.5) ** 2) * sign(q), at the same
map position: output pixel centres go to source pixels through the source's own (south-up) geotransform.
"""

import json
import math

import numpy as np
import pytest
from osgeo import gdal, ogr
from pyproj import Transformer
from qgis.core import Qgis

from tests.e2e.helpers import json_of, output_of
from tests.realdata.helpers import AEF_TILE, all_values, band_description, pixel_centre, pixel_size, verified

EPSG = "EPSG:32613"
NORTH_WEST = (418080.0, 4423780.0)  # PROVENANCE.md: the north-up origin of the 10 x 10 window
PIXEL = 10.0
SIZE = 10
BANDS = [f"A{i:02d}" for i in range(64)]
NODATA = -9999.0
TOLERANCE = 1e-6


class HandDequantised:
    """The source file read with GDAL, not geoembed: raw int8 codes and the file's geotransform."""

    def __init__(self, path):
        dataset = gdal.Open(str(path))
        band = dataset.GetRasterBand(1)
        codes = dataset.ReadAsArray()
        # GDAL 3.6 reports signed bytes as Byte with PIXELTYPE=SIGNEDBYTE: reinterpret them if numpy got uint8.
        if codes.dtype == np.uint8 and band.GetMetadataItem("PIXELTYPE", "IMAGE_STRUCTURE") == "SIGNEDBYTE":
            codes = codes.view(np.int8)
        assert codes.dtype == np.int8, f"{path} is {codes.dtype}, not signed 8-bit"
        self.codes = codes.astype(np.float64)
        self.nodata = band.GetNoDataValue()
        self.geotransform = dataset.GetGeoTransform()
        self.inverse = gdal.InvGeoTransform(self.geotransform)
        self.rows, self.cols = dataset.RasterYSize, dataset.RasterXSize

    def source_pixel(self, x, y):
        a0, a1, a2, b0, b1, b2 = self.inverse
        col, row = math.floor(a0 + a1 * x + a2 * y), math.floor(b0 + b1 * x + b2 * y)
        assert 0 <= row < self.rows and 0 <= col < self.cols, f"({x}, {y}) is outside the source"
        return row, col

    def value_at(self, x, y):
        """The 64 de-quantised values at map position (x, y), or None where the source is nodata."""
        row, col = self.source_pixel(x, y)
        q = self.codes[:, row, col]
        if self.nodata is not None and (q == self.nodata).any():
            return None
        return (q / 127.5) ** 2 * np.sign(q)

    def centre(self, row, col):
        """Map position of the centre of source pixel (row, col), through the source's geotransform."""
        g = self.geotransform
        return g[0] + (col + 0.5) * g[1] + (row + 0.5) * g[2], g[3] + (col + 0.5) * g[4] + (row + 0.5) * g[5]


@pytest.fixture(scope="module")
def source(realdata_dir):
    return verified(realdata_dir, AEF_TILE)


@pytest.fixture(scope="module")
def hand(source):
    return HandDequantised(source)


def test_grid_is_north_up_utm_13n_on_the_windows_pixels(layer, loaded):
    provider = layer.dataProvider()
    assert provider.crs().authid() == EPSG
    assert (provider.xSize(), provider.ySize()) == (SIZE, SIZE)
    assert pixel_size(provider) == pytest.approx((PIXEL, PIXEL), abs=1e-9)
    extent = provider.extent()
    assert (extent.xMinimum(), extent.yMaximum()) == pytest.approx(NORTH_WEST, abs=1e-6)
    # QGIS would warp a south-up file on the fly, so the orientation itself is read from the file.
    geotransform = gdal.Open(str(loaded[1])).GetGeoTransform()
    assert geotransform == pytest.approx((NORTH_WEST[0], PIXEL, 0.0, NORTH_WEST[1], 0.0, -PIXEL), abs=1e-6)


def test_bands_are_64_float32_named_a00_to_a63_with_nodata(layer):
    provider = layer.dataProvider()
    assert provider.bandCount() == len(BANDS)
    assert [band_description(provider, band) for band in range(1, len(BANDS) + 1)] == BANDS
    for band in range(1, len(BANDS) + 1):
        assert provider.dataType(band) == Qgis.Float32, band
        assert provider.sourceHasNoDataValue(band), band
        assert provider.sourceNoDataValue(band) == NODATA, band


def test_every_pixel_is_the_hand_dequantised_source_pixel_at_its_map_position(layer, hand):
    provider = layer.dataProvider()
    values = all_values(provider)
    for row in range(provider.ySize()):
        for col in range(provider.xSize()):
            expected = hand.value_at(*pixel_centre(provider, row, col))
            got = values[:, row, col]
            if expected is None:
                assert np.isnan(got).all(), (row, col)
            else:
                np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE, err_msg=f"pixel (row {row}, col {col})")


def test_every_vector_is_unit_length(layer):
    values = all_values(layer.dataProvider())
    norms = np.linalg.norm(values.reshape(values.shape[0], -1), axis=0)
    assert not np.isnan(norms).any(), "the window has no nodata pixel, yet the output has some"
    assert np.abs(norms - 1.0).max() <= 0.005, f"norms {norms.min():.4f}..{norms.max():.4f}"


# Source pixels (row, col) to sample: the four corners pin the orientation, one inside pixel for good measure.
SAMPLED_PIXELS = [(0, 0), (0, 9), (9, 0), (9, 9), (3, 6)]


@pytest.mark.parametrize("which", ["product file", "loaded output"])
def test_sample_at_pixel_centres_gives_the_hand_values(qgis_process, source, loaded, hand, tmp_path, which):
    if which == "loaded output":
        json_of(loaded[0])
    raster = source if which == "product file" else loaded[1]
    to_lonlat = Transformer.from_crs(EPSG, "EPSG:4326", always_xy=True)
    centres = [hand.centre(row, col) for row, col in SAMPLED_PIXELS]
    features = [
        {"type": "Feature", "properties": {"pid": index}, "geometry": {"type": "Point", "coordinates": to_lonlat.transform(x, y)}}
        for index, (x, y) in enumerate(centres)
    ]
    points = tmp_path / "points.geojson"
    points.write_text(json.dumps({"type": "FeatureCollection", "features": features}), encoding="utf-8")
    output = tmp_path / "samples.gpkg"
    completed = qgis_process("--json", "run", "geoembed:sample", "--", f"INPUT={raster}", f"POINTS={points}", f"OUTPUT={output}")
    json_of(completed)
    assert "Traceback" not in output_of(completed)
    sampled = {}
    dataset = ogr.Open(str(output))  # kept alive while its layer is read (OGR frees the layer with it)
    assert dataset is not None, f"no readable {output}"
    for feature in dataset.GetLayer(0):
        present = [feature.IsFieldSetAndNotNull(name) for name in BANDS]
        sampled[feature.GetField("pid")] = [feature.GetField(n) if ok else np.nan for n, ok in zip(BANDS, present)]
    assert sorted(sampled) == list(range(len(centres)))
    for index, (x, y) in enumerate(centres):
        got = np.array(sampled[index], dtype=np.float64)
        np.testing.assert_allclose(got, hand.value_at(x, y), rtol=0, atol=TOLERANCE, err_msg=f"point at {SAMPLED_PIXELS[index]}")
