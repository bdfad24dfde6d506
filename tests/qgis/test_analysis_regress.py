"""geoembed:regress through Processing: a field that is a known function of the fixture's embeddings is learnt
(blocked-CV R2 >= 0.9), the raster read back through QGIS's provider equals the numpy prediction of the saved model,
a saved MODEL predicts again without training, and bad inputs are refused in one line leaving nothing behind.
"""

import json
import pickle

import numpy as np
import pytest
from osgeo import gdal

from geoembed.analysis import classify, regress

from .refusals import assert_refused
from .test_analysis_algorithms import BANDS, EXTENT, point_layer, read_band, read_embedding, run

SAMPLES = 300


@pytest.fixture(scope="module")
def embedding(provider_ready, aef_mirror, tmp_path_factory):
    output = tmp_path_factory.mktemp("regress-embedding") / "embeddings.tif"
    run("load", {"SOURCE": str(aef_mirror), "YEAR": 2024, "EXTENT": EXTENT, "OUTPUT": str(output)})
    return read_embedding(output)


def field_of(vectors):
    """The known function: 3 * A00 - 2 * A05 + 0.5."""
    return 3.0 * vectors[:, 0].astype(np.float64) - 2.0 * vectors[:, 5] + 0.5


@pytest.fixture(scope="module")
def training(embedding):
    """(point layer in the raster's CRS at valid pixel centres with field 'value', the sampled vectors)."""
    rows, cols = np.nonzero(embedding.valid)
    pick = np.random.default_rng(0).choice(len(rows), SAMPLES, replace=False)
    rows, cols = rows[pick], cols[pick]
    vectors = embedding.values[:, rows, cols].T
    gt = embedding.geotransform
    xs, ys = gt[0] + (cols + 0.5) * gt[1], gt[3] + (rows + 0.5) * gt[5]
    points = [((x, y), [float(v), f"t{v:.3f}"]) for x, y, v in zip(xs, ys, field_of(vectors))]
    return point_layer(f"EPSG:{embedding.epsg}", points, "value:double,label:string"), vectors


@pytest.fixture(scope="module")
def trained(embedding, training, tmp_path_factory):
    folder = tmp_path_factory.mktemp("regress")
    outputs = {"OUTPUT": folder / "value.tif", "OUTPUT_MODEL": folder / "model.npz", "OUTPUT_REPORT": folder / "report.html"}
    results = run(
        "regress",
        {
            "INPUT": embedding.path,
            "TRAINING": training[0],
            "FIELD": "value",
            "METHOD": "ridge",
            **{k: str(v) for k, v in outputs.items()},
        },
    )
    return results, outputs


def test_regress_reaches_r2_0_9_under_blocked_cv(trained):
    results, outputs = trained
    assert results["R2"] >= 0.9
    assert results["RMSE"] > 0 and results["MAE"] > 0 and results["MAE"] <= results["RMSE"]
    metrics = json.loads(results["METRICS"])
    assert metrics["cv"]["r2"] == pytest.approx(results["R2"])
    assert len(metrics["cv"]["folds"]) >= 2 and metrics["values"]["count"] == SAMPLES
    page = outputs["OUTPUT_REPORT"].read_text(encoding="utf-8")
    assert "R²" in page and "fold" in page.lower()


def test_regress_raster_equals_the_numpy_prediction_of_the_saved_model(embedding, trained):
    _, outputs = trained
    values, layer = read_band(outputs["OUTPUT"])
    model = regress.load_model(outputs["OUTPUT_MODEL"])
    assert model.target == "value" and model.method == "ridge"
    expected = np.full(embedding.valid.shape, np.nan)
    expected[embedding.valid] = model.predict(embedding.values[:, embedding.valid].T).astype(np.float32)
    np.testing.assert_array_equal(np.isnan(values), ~embedding.valid)
    np.testing.assert_allclose(values[embedding.valid], expected[embedding.valid], rtol=1e-6, atol=1e-6)
    # close to the known function itself
    truth = field_of(embedding.values[:, embedding.valid].T)
    assert np.corrcoef(values[embedding.valid], truth)[0, 1] > 0.95
    dataset = gdal.Open(str(outputs["OUTPUT"]))
    assert dataset.GetRasterBand(1).GetDescription() == "value"
    assert "regression" in dataset.GetMetadataItem("GEOEMBED_ANALYSIS")
    assert layer.renderer().type() == "singlebandpseudocolor"  # the default style saved beside it


def test_regress_model_predicts_again_without_training(embedding, trained, tmp_path):
    _, outputs = trained
    again = tmp_path / "again.tif"
    results = run("regress", {"INPUT": embedding.path, "MODEL": str(outputs["OUTPUT_MODEL"]), "OUTPUT": str(again)})
    assert results["R2"] is None
    first, _ = read_band(outputs["OUTPUT"])
    second, _ = read_band(again)
    np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize("method", ["random_forest", "knn"])
def test_regress_other_methods_map_their_saved_model(embedding, training, tmp_path, method):
    outputs = {"OUTPUT": tmp_path / "v.tif", "OUTPUT_MODEL": tmp_path / "m.npz", "OUTPUT_REPORT": tmp_path / "r.csv"}
    results = run(
        "regress",
        {
            "INPUT": embedding.path,
            "TRAINING": training[0],
            "FIELD": "value",
            "METHOD": method,
            **{k: str(v) for k, v in outputs.items()},
        },
    )
    assert results["R2"] is not None
    values, _ = read_band(outputs["OUTPUT"])
    model = regress.load_model(outputs["OUTPUT_MODEL"])
    expected = model.predict(embedding.values[:, embedding.valid].T).astype(np.float32)
    np.testing.assert_allclose(values[embedding.valid], expected, rtol=1e-6, atol=1e-6)
    assert outputs["OUTPUT_REPORT"].read_text().splitlines()[0].startswith("fold,samples,r2")


def _classifier(path):
    rng = np.random.default_rng(0)
    features = rng.normal(size=(40, len(BANDS))).astype(np.float32)
    estimator = classify.make_model("nearest_centroid").fit(features, (features[:, 0] > 0).astype(int))
    classify.TrainedModel(estimator, ["a", "b"], BANDS, "aef", "nearest_centroid").save(path)


def test_regress_refusals(embedding, training, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    base = {"INPUT": embedding.path, "OUTPUT": str(out / "v.tif")}
    assert_refused("regress", {**base, "TRAINING": training[0], "FIELD": "label"}, ["label", "not a number"], out, "text")
    empty = point_layer(f"EPSG:{embedding.epsg}", [], "value:double")
    assert_refused("regress", {**base, "TRAINING": empty, "FIELD": "value"}, ["no feature", "value"], out, "empty")
    assert_refused("regress", base, ["TRAINING", "MODEL"], out, "nothing to learn from")
    models = tmp_path / "models"
    models.mkdir()
    _classifier(models / "classifier.npz")
    assert_refused("regress", {**base, "MODEL": str(models / "classifier.npz")}, ["classifier", "geoembed:regress"], out, "cls")
    (models / "old.pkl").write_bytes(pickle.dumps({"model": 1}))
    assert_refused("regress", {**base, "MODEL": str(models / "old.pkl")}, ["pickle"], out, "pickle")
    bad_report = {**base, "TRAINING": training[0], "FIELD": "value", "OUTPUT_REPORT": str(out / "r.txt")}
    assert_refused("regress", bad_report, ["OUTPUT_REPORT"], out, "report")


def test_classify_refuses_a_regression_model(embedding, trained, tmp_path):
    _, outputs = trained
    out = tmp_path / "out"
    out.mkdir()
    parameters = {"INPUT": embedding.path, "MODEL": str(outputs["OUTPUT_MODEL"]), "OUTPUT": str(out / "c.tif")}
    assert_refused("classify", parameters, ["regression model", "geoembed:regress"], out, "classify")
