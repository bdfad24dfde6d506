"""Earth Engine exports through `qgis_process.bin`, as a user runs them: a folder of pieces loaded with PRODUCT=auto,
and geoembed:similarity straight on one piece (2 runs).

Expectations come from the pieces read with GDAL and computed with numpy here, never from geoembed.
"""

import json

import numpy as np
import pytest
from osgeo import gdal
from pyproj import Transformer

from tests.e2e.helpers import json_of, leftovers, load_args, output_of
from tests.fixtures import ee_export as fx

NODATA = -9999.0
VARIANT = "float64-zeros"  # Earth Engine's default: masked pixels written as 0, no noData tag


@pytest.fixture(scope="module")
def ee(tmp_path_factory):
    return fx.build(tmp_path_factory.mktemp("e2e-ee-export"))


def stored(path):
    """(values float64 (64, rows, cols), masked (rows, cols)) of a piece read with GDAL; masked = all-zero or NaN."""
    values = gdal.Open(str(path)).ReadAsArray().astype(np.float64)
    return values, ~np.isfinite(values).all(axis=0) | ~(values != 0).any(axis=0)


def test_load_auto_mosaics_the_pieces_into_one_raster(qgis_process, ee, tmp_path):
    output = tmp_path / "export.tif"
    completed = qgis_process(*load_args(PRODUCT="auto", SOURCE=ee["piece_dirs"][VARIANT], OUTPUT=output))
    document = json_of(completed)
    assert document["results"]["PRODUCT"] == "aef" and document["results"]["OUTPUT"] == str(output)
    assert "Earth Engine export" in output_of(completed) and "Traceback" not in output_of(completed)
    assert leftovers(tmp_path) == []
    dataset = gdal.Open(str(output))
    assert dataset.GetGeoTransform() == ee["geotransform"]
    assert (dataset.RasterYSize, dataset.RasterXSize) == ee["shape"] and dataset.RasterCount == 64
    assert "Earth Engine export" in dataset.GetMetadataItem("GEOEMBED_PRODUCT_NAME")
    got = dataset.ReadAsArray()
    pieces = 0
    for path, (row, col) in zip(ee["pieces"][VARIANT], ee["piece_offsets"][VARIANT]):
        values, masked = stored(path)
        window = got[:, row : row + values.shape[1], col : col + values.shape[2]]
        assert np.all(window[:, masked] == NODATA), path.name
        np.testing.assert_array_equal(window[:, ~masked], values[:, ~masked].astype(np.float32), err_msg=path.name)
        pieces += int(masked.any())
    assert pieces == 4, "the masked box spans all four pieces"


def write_points(path, lonlats):
    features = [
        {"type": "Feature", "properties": {"id": i}, "geometry": {"type": "Point", "coordinates": [lon, lat]}}
        for i, (lon, lat) in enumerate(lonlats)
    ]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}), encoding="utf-8")
    return path


def test_similarity_on_one_piece(qgis_process, ee, tmp_path):
    piece = ee["pieces"][VARIANT][3]  # the south-east piece: 16 x 24 pixels, partly masked
    values, masked = stored(piece)
    x0, res, _, y0, _, _ = gdal.Open(str(piece)).GetGeoTransform()
    row, col = 13, 20
    assert not masked[row, col]
    lon, lat = Transformer.from_crs(fx.CRS, "EPSG:4326", always_xy=True).transform(x0 + (col + 0.5) * res, y0 - (row + 0.5) * res)
    query = write_points(tmp_path / "query.geojson", [(lon, lat)])
    output = tmp_path / "out" / "heat.tif"
    completed = qgis_process(
        "--json", "run", "geoembed:similarity", "--", f"INPUT={piece}", f"QUERY={query}", "K=0", f"OUTPUT={output}"
    )
    json_of(completed)
    assert "Traceback" not in output_of(completed)
    heat = gdal.Open(str(output)).ReadAsArray().astype(np.float64)
    q = values[:, row, col] / np.linalg.norm(values[:, row, col])
    norms = np.linalg.norm(values, axis=0)
    expected = np.tensordot(q, values, axes=(0, 0)) / np.where(norms > 0, norms, 1.0)
    assert heat[row, col] == pytest.approx(1.0, abs=1e-6)
    assert np.all(heat[masked] == NODATA)
    assert np.abs(heat - expected)[~masked].max() < 1e-5
