"""Issue 15's faster logistic regression, nearest centroid and kNN decide as before: logistic regression's and
nearest centroid's float32 products give predict_proba's classes (near-ties decided in float64) and its confidence
within 1e-6 (2e-6); the kNN search's float32
screening finds the neighbours of the float64 search, and the saved model predicts as the fitted estimator.

Expectations come from the float64 paths (predict_proba, the unscreened search) and from scikit-learn.
"""

import numpy as np
import pytest

from geoembed.analysis import classify, predictors

pytest.importorskip("sklearn")

BANDS = 64
TOLERANCE = 1e-6


def unit_rows(n, seed, bands=BANDS):
    """Float32 unit vectors, like AlphaEarth's."""
    values = np.random.default_rng(seed).normal(size=(n, bands))
    return (values / np.linalg.norm(values, axis=1, keepdims=True)).astype(np.float32)


def linear(classes=4, seed=0, bands=BANDS, dtype=np.float64):
    rng = np.random.default_rng(seed)
    coef = (3 * rng.normal(size=(classes, bands))).astype(dtype)
    return predictors.LinearPredictor(np.arange(classes), coef, rng.normal(size=classes).astype(dtype), "softmax")


def float64_best(predictor, features):
    probabilities = predictor.predict_proba(features)
    best = probabilities.argmax(axis=1)
    return best, probabilities[np.arange(len(best)), best]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])  # coefficients as scikit-learn < 1.8 and >= 1.8 fit them
def test_linear_best_equals_predict_proba(dtype):
    predictor = linear(dtype=dtype)
    features = unit_rows(20_000, 1)
    best, probability = predictor.best(features)
    expected_best, expected_probability = float64_best(predictor, features)
    np.testing.assert_array_equal(best, expected_best)
    np.testing.assert_allclose(probability, expected_probability, rtol=0, atol=TOLERANCE)


def test_linear_near_ties_are_decided_in_float64(monkeypatch):
    """Pixels whose two best scores are equal, or closer than float32 can tell, get predict_proba's class."""
    predictor = linear(classes=3)
    features = unit_rows(3000, 2)
    # pixels on the boundary of classes 0 and 1, and a float32 step either side of it
    difference = (predictor.coef_[0] - predictor.coef_[1]).astype(np.float64)
    offset = predictor.intercept_[0] - predictor.intercept_[1]
    along = features.astype(np.float64) - np.outer((features @ difference + offset) / (difference @ difference), difference)
    boundary = along.astype(np.float32)
    features = np.concatenate([features, boundary, np.nextafter(boundary, np.float32(1)), boundary * np.float32(1 + 2**-23)])
    decided = []
    original = predictors.Predictor.best
    record = lambda self, f, valid=None: decided.append(len(f)) or original(self, f, valid)  # noqa: E731
    monkeypatch.setattr(predictors.Predictor, "best", record)
    best, probability = predictor.best(features)
    assert decided and len(boundary) <= sum(decided) <= 3 * len(boundary)  # boundary pixels (where 0 and 1 lead) only
    monkeypatch.setattr(predictors.Predictor, "best", original)
    expected_best, expected_probability = float64_best(predictor, features)
    np.testing.assert_array_equal(best, expected_best)
    np.testing.assert_allclose(probability, expected_probability, rtol=0, atol=TOLERANCE)


def test_linear_best_ignores_what_invalid_pixels_hold():
    """Invalid pixels may hold NaN or infinities (a south-up file's nodata): valid pixels are unaffected, no
    warning, and nothing is sent to the float64 path for them."""
    predictor = linear()
    features = unit_rows(5000, 3)
    valid = np.random.default_rng(3).random(len(features)) > 0.2
    garbage = features.copy()
    garbage[~valid] = np.nan
    garbage[~valid][::7] = np.inf
    with np.errstate(all="raise"):
        best, probability = predictor.best(garbage, valid)
    expected_best, expected_probability = float64_best(predictor, features)
    np.testing.assert_array_equal(best[valid], expected_best[valid])
    np.testing.assert_allclose(probability[valid], expected_probability[valid], rtol=0, atol=TOLERANCE)
    assert (best[~valid] == 0).all() and (probability[~valid] == 0).all()


def centroids(classes=5, seed=7):
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(classes, BANDS))
    return predictors.CentroidPredictor(np.arange(classes), rows / np.linalg.norm(rows, axis=1, keepdims=True))


def test_centroid_best_equals_predict_proba():
    predictor = centroids()
    features = unit_rows(20_000, 11)
    features[:10] = 0  # zero vectors: every cosine 0, the first class at 1/5, as predict_proba gives
    best, probability = predictor.best(features)
    expected_best, expected_probability = float64_best(predictor, features)
    np.testing.assert_array_equal(best, expected_best)
    np.testing.assert_allclose(probability, expected_probability, rtol=0, atol=2 * TOLERANCE)
    assert (best[:10] == 0).all() and np.allclose(probability[:10], 0.2)


def test_centroid_near_ties_are_decided_in_float64(monkeypatch):
    """Pixels equally close (in angle) to two centroids, or closer than float32 can tell, get predict_proba's
    class; only those go to the float64 path."""
    predictor = centroids(classes=3)
    features = unit_rows(3000, 12)
    difference = predictor.centroids_[0] - predictor.centroids_[1]
    along = features.astype(np.float64) - np.outer(features @ difference / (difference @ difference), difference)
    boundary = along.astype(np.float32)
    features = np.concatenate([features, boundary, np.nextafter(boundary, np.float32(1))])
    decided = []
    original = predictors.Predictor.best
    record = lambda self, f, valid=None: decided.append(len(f)) or original(self, f, valid)  # noqa: E731
    monkeypatch.setattr(predictors.Predictor, "best", record)
    best, probability = predictor.best(features)
    monkeypatch.setattr(predictors.Predictor, "best", original)
    boundary_rows = np.arange(3000, len(features))
    expected_best, expected_probability = float64_best(predictor, features)
    leading = np.sort(predictor.predict_proba(features[boundary_rows]), axis=1)[:, -2:]
    contested = int(np.count_nonzero(np.isclose(leading[:, 0], leading[:, 1], rtol=1e-4)))
    assert decided and contested <= sum(decided) <= 2 * len(boundary_rows)  # ties where 0 and 1 lead, only
    np.testing.assert_array_equal(best, expected_best)
    np.testing.assert_allclose(probability, expected_probability, rtol=0, atol=2 * TOLERANCE)


def test_centroid_best_ignores_what_invalid_pixels_hold():
    predictor = centroids()
    features = unit_rows(5000, 13)
    valid = np.random.default_rng(13).random(len(features)) > 0.2
    garbage = features.copy()
    garbage[~valid] = np.nan
    garbage[np.flatnonzero(~valid)[::7]] = np.inf
    with np.errstate(all="raise"):
        best, probability = predictor.best(garbage, valid)
    expected_best, expected_probability = float64_best(predictor, features)
    np.testing.assert_array_equal(best[valid], expected_best[valid])
    np.testing.assert_allclose(probability[valid], expected_probability[valid], rtol=0, atol=2 * TOLERANCE)
    assert (best[~valid] == 0).all() and (probability[~valid] == 0).all()


def test_centroid_float64_features_and_one_class_keep_predict_proba():
    features = unit_rows(500, 14)
    for predictor, values in ((centroids(), features.astype(np.float64)), (centroids(classes=1), features)):
        best, probability = predictor.best(values)
        expected_best, expected_probability = float64_best(predictor, values)
        np.testing.assert_array_equal(best, expected_best)
        np.testing.assert_array_equal(probability, expected_probability)


def test_linear_other_links_and_float64_features_keep_predict_proba():
    rng = np.random.default_rng(4)
    features = unit_rows(500, 4)
    for predictor in (
        predictors.LinearPredictor(np.arange(2), rng.normal(size=(1, BANDS)), rng.normal(size=1), "ovr"),
        predictors.LinearPredictor(np.arange(3), rng.normal(size=(3, BANDS)), rng.normal(size=3), "ovr"),
        linear(),
    ):
        for values in (features, features.astype(np.float64)):
            best, probability = predictor.best(values)
            expected_best, expected_probability = float64_best(predictor, values)
            np.testing.assert_array_equal(best, expected_best)
            np.testing.assert_allclose(probability, expected_probability, rtol=0, atol=TOLERANCE)


def test_linear_class_map_of_a_fitted_model_equals_sklearn():
    from sklearn.linear_model import LogisticRegression

    features = unit_rows(1500, 5)
    labels = (features @ np.random.default_rng(5).normal(size=(BANDS, 4))).argmax(axis=1)
    estimator = LogisticRegression(max_iter=2000).fit(features, labels)
    model = classify.TrainedModel(estimator, list("ABCD"), [f"A{i:02d}" for i in range(BANDS)], "aef", "logistic_regression")
    probe = unit_rows(30_000, 6)
    index, probability = model.predict_columns(np.ascontiguousarray(probe.T))
    np.testing.assert_array_equal(index, estimator.predict(probe))
    np.testing.assert_allclose(probability, estimator.predict_proba(probe).max(axis=1), rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("samples", [7, 60, 256, 2000])
def test_knn_screened_search_equals_the_float64_search(samples, monkeypatch):
    """Screened in float32 or not, the neighbours of a brute-force float64 search, in its order (equal distances:
    the lower index first), and the same distances."""
    vectors = unit_rows(samples, 7)
    vectors[samples // 2 :][:3] = vectors[:3]  # duplicates: ties, broken by the lower index
    queries = np.concatenate([unit_rows(4000, 8), vectors[:5] + 0.01]).astype(np.float64)
    squared = ((queries[:, None, :] - vectors.astype(np.float64)[None]) ** 2).sum(axis=2)
    brute = np.argsort(squared, axis=1, kind="stable")[:, :6]
    ranked = np.take_along_axis(squared, brute, axis=1)
    # rows without ties among the first six (a tie of duplicates: BLAS's float64 products may order them either way)
    clear = (np.diff(ranked if samples > 5 else ranked[:, :5], axis=1) > 1e-9).all(axis=1)
    search = predictors.NeighbourSearch(vectors, 5)
    got, distance = search.neighbours(queries, np.float32)
    monkeypatch.setattr(search, "_screen", lambda queries: None)
    unscreened, unscreened_distance = search.neighbours(queries, np.float32)
    for neighbours in (got, unscreened):
        np.testing.assert_array_equal(neighbours[clear], brute[clear, :5])
    np.testing.assert_allclose(distance, unscreened_distance, rtol=1e-6)
    np.testing.assert_allclose(distance.astype(np.float64) ** 2, ranked[:, :5], rtol=1e-6)
    assert clear.mean() > 0.5 or samples < 10  # seven vectors, three of them copies: ties everywhere


def test_knn_screening_keeps_most_rows_and_sends_ties_to_float64():
    vectors = unit_rows(300, 9)
    vectors[150:155] = vectors[0]  # five copies of one vector: queries on it tie at the k-th place
    queries = np.concatenate([unit_rows(1000, 10), np.repeat(vectors[:1], 20, axis=0)]).astype(np.float64)
    rows, candidates = predictors.NeighbourSearch(vectors, 5)._screen(queries)  # noqa: SLF001
    assert len(rows) > 0.95 * 1000 and not np.isin(np.arange(1000, 1020), rows).any()
    assert candidates.shape == (len(rows), 5)


def test_knn_model_predicts_as_the_fitted_estimator_and_round_trips(tmp_path):
    """make_model("knn") keeps every training point; its numpy predictor, and the model file, predict as
    scikit-learn's kNN."""
    features = unit_rows(900, 12)
    labels = (features @ np.random.default_rng(12).normal(size=(BANDS, 3))).argmax(axis=1)
    estimator = classify.make_model("knn").fit(features, labels)
    assert len(estimator._fit_X) == len(features)  # noqa: SLF001
    model = classify.TrainedModel(estimator, list("ABC"), [f"A{i:02d}" for i in range(BANDS)], "aef", "knn")
    path = model.save(tmp_path / "knn.geoembed")
    loaded = classify.load_model(path)
    probe = unit_rows(3000, 13)
    for predictor in (model.estimator, loaded.estimator):
        np.testing.assert_array_equal(predictor.predict(probe), estimator.predict(probe))
        np.testing.assert_allclose(predictor.predict_proba(probe), estimator.predict_proba(probe), rtol=0, atol=TOLERANCE)
