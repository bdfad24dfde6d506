"""geoembed:regress through `qgis_process.bin`: trained on a 2024 raw AEF tile with points whose value is a known
function of the embeddings, then its saved model applied to the 2023 tile (a model of one year predicts another),
and a text field refused in one line. Expectations come from the fixture's codes de-quantised here."""

import numpy as np
from osgeo import gdal
from pyproj import Transformer

from geoembed.analysis import regress
from tests.e2e.helpers import json_of, leftovers, output_of
from tests.e2e.test_analysis_cli import NODATA, run_args, write_points
from tests.e2e.test_change_compare_cli import dequantised, tiles  # noqa: F401 - module fixture

SAMPLES = 200


def field_of(vectors):
    return 3.0 * vectors[:, 0] - 2.0 * vectors[:, 5] + 0.5


def training_points(tile, path):
    rows, cols = np.nonzero(tile.valid)
    pick = np.random.default_rng(0).choice(len(rows), SAMPLES, replace=False)
    rows, cols = rows[pick], cols[pick]
    values = field_of(tile.values[:, rows, cols].T.astype(np.float64))
    to_lonlat = Transformer.from_crs(f"EPSG:{tile.spec.epsg}", "EPSG:4326", always_xy=True)
    lon, lat = to_lonlat.transform(tile.x0 + (cols + 0.5) * tile.res, tile.y0 - (rows + 0.5) * tile.res)
    rows_out = [((x, y), {"value": float(v), "name": f"p{i}"}) for i, (x, y, v) in enumerate(zip(lon, lat, values))]
    return write_points(path, rows_out)


def test_regress_cli_trains_on_one_year_and_predicts_another(qgis_process, tiles, tmp_path):  # noqa: F811
    new, old = tiles[2024], tiles[2023]
    points = training_points(new, tmp_path / "points.geojson")
    out = tmp_path / "out"
    model = out / "model.npz"
    completed = qgis_process(
        *run_args(
            "regress", INPUT=new.raw, TRAINING=points, FIELD="value", METHOD="ridge", OUTPUT=out / "v2024.tif", OUTPUT_MODEL=model
        )
    )
    results = json_of(completed)["results"]
    assert results["R2"] >= 0.9 and results["OUTPUT_MODEL"] == str(model)
    completed = qgis_process(*run_args("regress", INPUT=old.raw, MODEL=model, OUTPUT=out / "v2023.tif"))
    json_of(completed)
    values, valid = dequantised(old.spec)
    expected = regress.load_model(model).predict(values[:, valid].T.astype(np.float32)).astype(np.float32)
    got = gdal.Open(str(out / "v2023.tif")).ReadAsArray()
    assert (got[~valid] == NODATA).all()
    np.testing.assert_allclose(got[valid], expected, rtol=1e-5, atol=1e-5)
    assert "Traceback" not in output_of(completed)


def test_regress_cli_refuses_a_text_field(qgis_process, tiles, tmp_path):  # noqa: F811
    points = training_points(tiles[2024], tmp_path / "points.geojson")
    out = tmp_path / "out"
    completed = qgis_process(*run_args("regress", INPUT=tiles[2024].raw, TRAINING=points, FIELD="name", OUTPUT=out / "v.tif"))
    assert completed.returncode != 0
    text = output_of(completed)
    assert "not a number" in text and "Traceback" not in text
    assert leftovers(out) == []
