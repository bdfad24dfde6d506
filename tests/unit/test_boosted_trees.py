"""METHOD=gradient_boosting: a GradientBoostingClassifier kept as numpy arrays (predictors.BoostedTreesPredictor)
predicts as scikit-learn's predict_proba (within 1e-9, the same classes), for three and more classes and for two,
straight from the fitted model and through a saved model file; malformed arrays in a model file are refused in one
line.

Expectations come from scikit-learn itself (the fitted estimator's predict / predict_proba), not from geoembed.
"""

import numpy as np
import pytest

from geoembed.analysis import classify
from geoembed.analysis.classify import TrainedModel, load_model
from geoembed.analysis.predictors import BoostedTreesPredictor, ForestPredictor, from_estimator
from geoembed.loaders.errors import GeoEmbedError
from tests.support.model_files import set_array, tampered
from tests.unit.helpers import assert_one_line

sklearn = pytest.importorskip("sklearn")
from sklearn.ensemble import GradientBoostingClassifier  # noqa: E402

BANDS = 16
TOLERANCE = 1e-9
METHOD = "gradient_boosting"


def vectors(n, n_classes, seed=0):
    """(float32 (n, BANDS) features, labels): overlapping Gaussian classes, so probabilities are not all 0 or 1."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(size=(n_classes, BANDS))
    labels = rng.integers(0, n_classes, n)
    return (centres[labels] + 1.5 * rng.normal(size=(n, BANDS))).astype(np.float32), labels


def fitted(n_classes, labels_used=None, **settings):
    features, labels = vectors(600, n_classes)
    if labels_used is not None:  # classes missing from the samples
        labels = np.asarray(labels_used)[labels % len(labels_used)]
    if settings:
        return GradientBoostingClassifier(random_state=0, **settings).fit(features, labels)
    return classify.make_model(METHOD).fit(features, labels)


def assert_predicts_as(estimator, predictor, probe):
    expected = estimator.predict_proba(probe)
    got = predictor.predict_proba(probe)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE)
    np.testing.assert_array_equal(predictor.predict(probe), estimator.predict(probe))
    np.testing.assert_array_equal(predictor.classes_, estimator.classes_)


SETTINGS = {
    "train's default": {},
    "depth 3, no subsampling": {"n_estimators": 20, "max_depth": 3},
    "unequal trees": {"n_estimators": 15, "max_depth": 5, "min_samples_leaf": 20},
    "started from zero": {"n_estimators": 20, "max_depth": 2, "init": "zero"},
}


@pytest.mark.parametrize("settings", SETTINGS.values(), ids=SETTINGS.keys())
@pytest.mark.parametrize("n_classes", [4, 3, 2])
def test_predicts_as_scikit_learn(n_classes, settings):
    estimator = fitted(n_classes, **settings)
    predictor = from_estimator(estimator)
    assert isinstance(predictor, BoostedTreesPredictor)
    probe = vectors(3000, n_classes, seed=1)[0]
    assert_predicts_as(estimator, predictor, probe)
    assert_predicts_as(estimator, predictor, probe.astype(np.float64))


def test_classes_missing_from_the_samples():
    """Fitted on class indices 0, 2, 3: the columns are those classes, as scikit-learn's."""
    estimator = fitted(5, labels_used=[0, 2, 3])
    predictor = from_estimator(estimator)
    assert_predicts_as(estimator, predictor, vectors(2000, 5, seed=2)[0])
    assert list(predictor.classes_) == [0, 2, 3]


def test_train_fits_shallow_boosting_seeded():
    model = classify.make_model(METHOD, seed=7)
    assert isinstance(model, GradientBoostingClassifier)
    assert model.max_depth <= 3 and model.n_estimators <= 100 and model.random_state == 7


def test_each_class_is_walked_apart_as_all_trees_at_once():
    """The per-class walks add up the leaf values as one walk of every tree with the (leaves, classes) values."""
    predictor = from_estimator(fitted(4))
    probe = vectors(1000, 4, seed=3)[0]
    scores = predictor.trees.leaf_sum(probe, predictor.leaf_value) + predictor.baseline
    scores = np.exp(scores - scores.max(axis=1, keepdims=True))
    np.testing.assert_allclose(predictor.predict_proba(probe), scores / scores.sum(axis=1, keepdims=True), atol=1e-12)
    # one tree per class and round, in scikit-learn's order; each tree's values in its class's column only
    assert predictor.trees.count == 4 * fitted(4).n_estimators
    assert predictor.chunk_pixels(BANDS) >= predictor.trees.chunk_pixels()


def test_a_forest_predictor_is_not_confused_with_boosting():
    from sklearn.ensemble import RandomForestClassifier

    features, labels = vectors(300, 3)
    assert isinstance(from_estimator(RandomForestClassifier(5, random_state=0).fit(features, labels)), ForestPredictor)


def test_other_initial_estimators_cannot_be_saved():
    from sklearn.linear_model import LogisticRegression

    features, labels = vectors(300, 3)
    estimator = GradientBoostingClassifier(n_estimators=5, init=LogisticRegression(max_iter=500)).fit(features, labels)
    with pytest.raises(GeoEmbedError) as info:
        TrainedModel(estimator, list("abc"), band_names(), "aef", METHOD)
    assert "class prior" in assert_one_line(info.value)


# ---------------------------------------------------------------- model files


def band_names():
    return [f"A{i:02d}" for i in range(BANDS)]


def saved(tmp_path, estimator, n_classes, name="model.npz"):
    path = tmp_path / name
    TrainedModel(estimator, [f"class {i}" for i in range(n_classes)], band_names(), "aef", METHOD).save(path)
    return path


@pytest.mark.parametrize("n_classes", [4, 2])
def test_round_trip_through_a_model_file(tmp_path, n_classes):
    estimator = fitted(n_classes)
    loaded = load_model(str(saved(tmp_path, estimator, n_classes)))
    assert loaded.method == METHOD and isinstance(loaded.estimator, BoostedTreesPredictor)
    probe = vectors(3000, n_classes, seed=4)[0]
    assert_predicts_as(estimator, loaded.estimator, probe)
    index, confidence = loaded.predict(probe)
    np.testing.assert_array_equal(index, estimator.predict(probe))
    np.testing.assert_allclose(confidence, estimator.predict_proba(probe).max(axis=1), rtol=0, atol=TOLERANCE)


def _leaf_rows_of_first_tree(arrays):
    left = arrays["left"][: arrays["starts"][1]]
    return np.count_nonzero(left < 0)


def _two_columns(arrays):
    """The first tree's leaves scoring two classes (a file train never writes)."""
    values = arrays["leaf_value"].copy()
    values[: _leaf_rows_of_first_tree(arrays), :2] = 0.5
    return values


MALFORMED = {
    "NaN leaf value": (set_array("leaf_value", lambda a: np.where(a["leaf_value"] != 0, np.nan, 0.0)), ["leaf values", "NaN"]),
    "infinite initial score": (set_array("baseline", lambda a: np.full_like(a["baseline"], np.inf)), ["initial scores"]),
    "leaf values that add up to infinity": (
        set_array("leaf_value", lambda a: np.where(a["leaf_value"] != 0, 1e308, 0.0)),
        ["too large"],
    ),
    "a tree scoring two classes": (set_array("leaf_value", _two_columns), ["more than one class"]),
    "a leaf without a value": (set_array("leaf_value", lambda a: a["leaf_value"][:-1]), ["leaf_value", "shape"]),
    "initial scores of other classes": (set_array("baseline", lambda a: np.zeros(len(a["baseline"]) + 1)), ["baseline", "shape"]),
    "no initial scores": (lambda arrays: arrays.pop("baseline"), ["missing"]),
    "tree child pointing back up": (
        set_array("left", lambda a: np.where(np.arange(len(a["left"])) == 1, 0, a["left"])),
        ["tree"],
    ),
    "tree splits on a band that does not exist": (
        set_array("feature", lambda a: np.where(a["left"] >= 0, BANDS, 0)),
        ["band"],
    ),
}


@pytest.mark.parametrize("change", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_arrays_are_refused_in_one_line(tmp_path, change):
    edit, words = change
    path = tampered(saved(tmp_path, fitted(3), 3), tmp_path / "tampered.npz", change_arrays=edit)
    with pytest.raises(GeoEmbedError) as info:
        load_model(str(path))
    message = assert_one_line(info.value)
    assert all(word.lower() in message.lower() for word in ["geoembed:train", *words]), message


def test_the_tampering_keeps_a_valid_model_valid(tmp_path):
    estimator = fitted(3)
    loaded = load_model(str(tampered(saved(tmp_path, estimator, 3), tmp_path / "same.npz")))
    assert_predicts_as(estimator, loaded.estimator, vectors(500, 3, seed=5)[0])
