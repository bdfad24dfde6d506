"""geoembed:regress's analysis: metrics against their formulas, numpy predictors against scikit-learn's predict after
a save and a load, blocked CV reaching R2 >= 0.9 on fields that are known functions of the embeddings, block-wise
prediction, and the one-line refusals of models of the other task.

Expectations come from scikit-learn (fitted estimators' predict, sklearn.metrics) and from numpy formulas.
"""

import pickle

import numpy as np
import pytest

from geoembed.analysis import classify, model_file, regress
from geoembed.analysis.classify import spatial_blocks
from geoembed.loaders.errors import GeoEmbedError
from geoembed.loaders.raster.grid import Window
from tests.unit.helpers import assert_one_line
from tests.unit.test_analysis_memraster import random_raster

sklearn = pytest.importorskip("sklearn")
from sklearn import metrics as skmetrics  # noqa: E402

BANDS = 64
NAMES = [f"A{i:02d}" for i in range(BANDS)]


def embeddings(n, seed=0, latent=4):
    """Unit-scale embeddings on a low-dimensional manifold (as real embeddings are), float32, with coordinates."""
    rng = np.random.default_rng(seed)
    factors = rng.uniform(-1, 1, size=(n, latent))
    mixing = np.random.default_rng(42).normal(size=(latent, BANDS)) / np.sqrt(latent)
    features = (np.tanh(factors @ mixing) * 0.3 + 0.01 * rng.normal(size=(n, BANDS))).astype(np.float32)
    xs, ys = rng.uniform(0, 1000, n), rng.uniform(0, 1000, n)
    return features, xs, ys


def linear_field(features):
    return 3.0 * features[:, 0].astype(np.float64) - 2.0 * features[:, 5] + 0.5


def nonlinear_field(features):
    f = features.astype(np.float64)
    return np.sin(6 * f[:, 0]) + f[:, 5] ** 2 * 4 + 0.5


def fitted(method, n=1500, seed=0):
    features, _, _ = embeddings(n, seed)
    return regress.fit(features, nonlinear_field(features), method)


def model_of(estimator, method):
    return regress.RegressionModel(estimator, "biomass", NAMES, "aef", method, report={"values": {"p2": 0.0, "p98": 1.0}})


# --- metrics ---------------------------------------------------------------------------------------------------


def test_scores_equal_sklearn_metrics():
    rng = np.random.default_rng(3)
    truth = rng.normal(size=300)
    predicted = truth + 0.3 * rng.normal(size=300)
    got = regress.scores(truth, predicted)
    assert got["r2"] == pytest.approx(skmetrics.r2_score(truth, predicted), abs=1e-12)
    assert got["rmse"] == pytest.approx(np.sqrt(skmetrics.mean_squared_error(truth, predicted)), abs=1e-12)
    assert got["mae"] == pytest.approx(skmetrics.mean_absolute_error(truth, predicted), abs=1e-12)
    assert got["samples"] == 300


def test_r2_of_constant_truth_is_undefined():
    assert regress.scores(np.ones(5), np.arange(5.0))["r2"] is None


def test_metrics_per_fold_are_the_scores_of_each_fold():
    rng = np.random.default_rng(4)
    truth, predicted = rng.normal(size=100), rng.normal(size=100)
    assignment = np.arange(100) % 3
    result = regress.metrics(truth, predicted, assignment)
    assert len(result["folds"]) == 3
    for fold in range(3):
        expected = skmetrics.mean_absolute_error(truth[assignment == fold], predicted[assignment == fold])
        assert result["folds"][fold]["mae"] == pytest.approx(expected, abs=1e-12)
    assert sum(f["samples"] for f in result["folds"]) == 100


# --- blocked cross-validation ---------------------------------------------------------------------------------------


def test_cross_validation_never_trains_on_the_block_it_predicts():
    features, xs, ys = embeddings(400)
    targets = linear_field(features)
    groups = spatial_blocks(xs, ys, 200.0)
    predicted, assignment = regress.cross_validate(features, targets, groups, "ridge")
    for fold in np.unique(assignment):
        test = assignment == fold
        assert not set(groups[test]) & set(groups[~test])
        expected = regress.fit(features[~test], targets[~test], "ridge").predict(features[test])
        np.testing.assert_allclose(predicted[test], expected, rtol=0, atol=1e-9)


def test_cross_validation_needs_two_blocks():
    features, _, _ = embeddings(50)
    assert regress.cross_validate(features, linear_field(features), np.zeros(50, dtype=int), "ridge") is None


@pytest.mark.parametrize("method", regress.METHODS)
@pytest.mark.parametrize("field", [linear_field, nonlinear_field], ids=["linear", "nonlinear"])
def test_blocked_cv_r2_reaches_0_9_on_a_known_function_of_the_embeddings(method, field):
    if method == "ridge" and field is nonlinear_field:
        pytest.skip("a linear model is not expected to fit the nonlinear field")
    features, xs, ys = embeddings(2000, seed=1)
    targets = field(features)
    groups = spatial_blocks(xs, ys, 200.0)
    predicted, assignment = regress.cross_validate(features, targets, groups, method)
    result = regress.metrics(targets, predicted, assignment)
    assert result["r2"] >= 0.9, result
    assert len(result["folds"]) == 5


# --- model file: round trip, predictor equality ------------------------------------------------------------------


@pytest.mark.parametrize("method", regress.METHODS)
def test_saved_model_predicts_as_sklearn(tmp_path, method):
    estimator = fitted(method)
    path = tmp_path / "model.npz"
    model_of(estimator, method).save(path)
    loaded = regress.load_model(path)
    probe, _, _ = embeddings(3000, seed=7)
    expected = estimator.predict(probe)
    np.testing.assert_allclose(loaded.predict(probe), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(model_of(estimator, method).predict(probe), expected, rtol=1e-6, atol=1e-6)
    assert loaded.target == "biomass" and loaded.method == method and loaded.band_names == tuple(NAMES)
    assert loaded.report == {"values": {"p2": 0.0, "p98": 1.0}}


def test_knn_on_training_vectors_takes_their_own_targets(tmp_path):
    features, _, _ = embeddings(300)
    targets = linear_field(features)
    estimator = regress.fit(features, targets, "knn")
    path = tmp_path / "knn.npz"
    model_of(estimator, "knn").save(path)
    loaded = regress.load_model(path)
    np.testing.assert_allclose(loaded.predict(features[:50]), estimator.predict(features[:50]), rtol=0, atol=1e-6)
    np.testing.assert_allclose(loaded.predict(features[:50]), targets[:50], rtol=0, atol=1e-6)


def test_knn_with_fewer_samples_than_neighbours():
    features, _, _ = embeddings(3)
    estimator = regress.fit(features, linear_field(features), "knn")
    assert estimator.n_neighbors == 3
    probe, _, _ = embeddings(20, seed=5)
    np.testing.assert_allclose(model_of(estimator, "knn").predict(probe), estimator.predict(probe), rtol=1e-6, atol=1e-7)


def test_forest_header_and_arrays_are_plain(tmp_path):
    estimator = fitted("random_forest", n=200)
    path = tmp_path / "forest.npz"
    model_of(estimator, "random_forest").save(path)
    with np.load(path, allow_pickle=False) as archive:
        assert all(archive[name].dtype.kind in "iufU" for name in archive.files)
        header = __import__("json").loads(str(archive["header"]))
    assert header["task"] == "regression" and header["target"] == "biomass"
    assert "class_names" not in header
    assert header["predictor"]["kind"] == "random_forest_regression"
    assert header["predictor"]["trees"] == regress.TREES


def test_a_classifier_model_is_refused_in_one_line(tmp_path):
    rng = np.random.default_rng(0)
    features = rng.normal(size=(100, BANDS)).astype(np.float32)
    labels = (features[:, 0] > 0).astype(int)
    path = tmp_path / "classifier.npz"
    classify.TrainedModel(
        classify.make_model("nearest_centroid").fit(features, labels), ["a", "b"], NAMES, "aef", "nearest_centroid"
    ).save(path)
    with pytest.raises(GeoEmbedError) as caught:
        regress.load_model(path)
    message = assert_one_line(caught.value)
    assert "classifier" in message and "geoembed:regress" in message


@pytest.mark.parametrize("method", regress.METHODS)
def test_a_regression_model_is_refused_by_classify_in_one_line(tmp_path, method):
    path = tmp_path / "regression.npz"
    model_of(fitted(method, n=100), method).save(path)
    with pytest.raises(GeoEmbedError) as caught:
        classify.load_model(path)
    message = assert_one_line(caught.value)
    assert "regression model" in message and "geoembed:regress" in message


def test_a_pickle_is_never_opened(tmp_path):
    path = tmp_path / "model.npz"
    path.write_bytes(pickle.dumps({"model": 1}))
    with pytest.raises(GeoEmbedError) as caught:
        regress.load_model(path)
    message = assert_one_line(caught.value)
    assert "pickle" in message and "geoembed:regress" in message


def test_a_regression_kind_under_a_classifier_header_is_refused(tmp_path):
    """A crafted file: classifier header (no task) naming a regression predictor."""
    from tests.support.model_files import tampered

    source = tmp_path / "ridge.npz"
    model_of(fitted("ridge", n=100), "ridge").save(source)

    def as_classifier(header):
        header.pop("task")
        header.pop("target")
        header["class_names"] = ["a"]

    path = tmp_path / "crafted.npz"
    tampered(source, path, change_header=as_classifier)
    with pytest.raises(GeoEmbedError) as caught:
        classify.load_model(path)
    assert "not a classification model" in assert_one_line(caught.value)


def test_model_file_still_reads_classifier_headers_without_task(tmp_path):
    rng = np.random.default_rng(0)
    features = rng.normal(size=(60, BANDS)).astype(np.float32)
    labels = (features[:, 0] > 0).astype(int)
    path = tmp_path / "c.npz"
    model = classify.TrainedModel(classify.make_model("knn").fit(features, labels), ["a", "b"], NAMES, "aef", "knn")
    model.save(path)
    fields, _ = model_file.load(path)
    assert fields["class_names"] == ["a", "b"]
    with np.load(path, allow_pickle=False) as archive:
        assert "task" not in __import__("json").loads(str(archive["header"]))


def test_bands_must_match():
    model = model_of(fitted("ridge", n=50), "ridge")
    with pytest.raises(GeoEmbedError) as caught:
        model.check_bands(NAMES[:10])
    assert "64 bands" in assert_one_line(caught.value)


# --- block-wise prediction --------------------------------------------------------------------------------------


def test_prediction_raster_equals_predict_per_pixel_and_keeps_nodata():
    raster = random_raster(40, 30, bands=BANDS, seed=2)
    raster.values *= 0.2
    valid = raster.valid
    features = raster.values[:, valid].T
    estimator = regress.fit(features, linear_field(features), "ridge")
    model = model_of(estimator, "ridge")
    producer = regress.PredictionRaster(raster, model)
    out = np.full(valid.shape, np.nan, dtype=np.float32)
    mask = np.zeros(valid.shape, dtype=bool)
    for window in (Window(c, r, 16, 16) for r in range(0, 30, 16) for c in range(0, 40, 16)):
        w = Window(window.col, window.row, min(16, 40 - window.col), min(16, 30 - window.row))
        (block,) = producer.produce(w)
        out[w.row : w.row + w.height, w.col : w.col + w.width] = block.values
        mask[w.row : w.row + w.height, w.col : w.col + w.width] = block.valid
    np.testing.assert_array_equal(mask, valid)
    np.testing.assert_allclose(out[valid], estimator.predict(features).astype(np.float32), rtol=1e-6, atol=1e-6)
    low, high = producer.percentiles()
    expected = np.percentile(estimator.predict(features).astype(np.float32).astype(np.float64), [2, 98])
    assert low == pytest.approx(expected[0], abs=1e-5) and high == pytest.approx(expected[1], abs=1e-5)


def test_reports_list_every_fold():
    rng = np.random.default_rng(1)
    truth, predicted = rng.normal(size=60), rng.normal(size=60)
    result = regress.metrics(truth, predicted, np.arange(60) % 3)
    summary = regress.target_summary(truth)
    text = regress.report_csv(result, summary, "ridge", "height")
    rows = [line.split(",") for line in text.strip().splitlines()]
    assert rows[0][:5] == ["fold", "samples", "r2", "rmse", "mae"]
    assert [r[0] for r in rows[1:]] == ["1", "2", "3", "all"]
    assert float(rows[-1][3]) == pytest.approx(result["rmse"], rel=1e-5)
    page = regress.report_html("t", result, summary, "ridge", "height", "note")
    assert "R²" in page and page.count("<tr>") == 5


def test_unknown_method():
    with pytest.raises(GeoEmbedError) as caught:
        regress.make_regressor("svm")
    assert "random_forest" in assert_one_line(caught.value)
