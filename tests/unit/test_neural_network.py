"""METHOD=neural_network: train's network (standardised bands, then scikit-learn's MLPClassifier), kept as numpy
arrays (neural_network.NeuralNetworkPredictor), predicts as the MLPClassifier itself does on the standardised
features (within 1e-9, the same classes), for two and more classes, straight after fitting and through a saved model
file; malformed arrays or headers are refused in one line.

Expectations come from scikit-learn itself (an MLPClassifier fitted alongside, with the same seed, on the same
standardised features), not from geoembed.
"""

import warnings

import numpy as np
import pytest

from geoembed.analysis import classify
from geoembed.analysis.classify import TrainedModel, load_model
from geoembed.analysis.neural_network import HIDDEN_UNITS, SETTINGS, NeuralNetworkPredictor
from geoembed.analysis.predictors import from_estimator
from geoembed.loaders.errors import GeoEmbedError
from tests.support.model_files import set_array, tampered
from tests.unit.helpers import assert_one_line

sklearn = pytest.importorskip("sklearn")
from sklearn.neural_network import MLPClassifier  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

BANDS = 16
TOLERANCE = 1e-9
METHOD = "neural_network"


def vectors(n, n_classes, seed=0, offset=0.0, spread=1.0):
    """(float32 (n, BANDS) features, labels): overlapping Gaussian classes, so probabilities are not all 0 or 1."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(size=(n_classes, BANDS))
    labels = rng.integers(0, n_classes, n)
    features = centres[labels] + 1.5 * rng.normal(size=(n, BANDS))
    return (offset + spread * features).astype(np.float32), labels


def fitted_pair(n_classes, seed=0, **data):
    """(train's fitted network, scikit-learn's pipeline fitted the same way) on the same samples."""
    features, labels = vectors(600, n_classes, **data)
    ours = classify.make_model(METHOD, seed).fit(features, labels)
    scaler = StandardScaler().fit(features.astype(np.float64))
    theirs = MLPClassifier(hidden_layer_sizes=HIDDEN_UNITS, random_state=seed, **SETTINGS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the epoch limit, as train ignores it
        theirs.fit(scaler.transform(features.astype(np.float64)), labels)
    return ours, (scaler, theirs)


def assert_predicts_as(reference, predictor, probe):
    scaler, network = reference
    standardised = scaler.transform(probe.astype(np.float64))
    expected = network.predict_proba(standardised)
    got = predictor.predict_proba(probe)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE)
    np.testing.assert_array_equal(predictor.predict(probe), network.predict(standardised))
    np.testing.assert_array_equal(predictor.classes_, network.classes_)


@pytest.mark.parametrize("n_classes", [5, 3, 2])
def test_predicts_as_scikit_learn(n_classes):
    ours, reference = fitted_pair(n_classes)
    assert from_estimator(ours) is ours and isinstance(ours, NeuralNetworkPredictor)
    probe = vectors(3000, n_classes, seed=1)[0]
    assert_predicts_as(reference, ours, probe)
    assert_predicts_as(reference, ours, probe.astype(np.float64))


def test_bands_of_any_range_are_standardised():
    """Values around 5,000 with a spread of 300 (a product that is not unit vectors): the network sees standardised
    bands, so it learns as well as on the same samples near zero."""
    near_zero, _ = fitted_pair(3)
    far, reference = fitted_pair(3, offset=5000.0, spread=300.0)
    assert np.allclose(far.mean, 5000.0, atol=600) and (far.scale > 100).all()
    probe, truth = vectors(3000, 3, seed=1)
    assert_predicts_as(reference, far, (5000.0 + 300.0 * probe.astype(np.float64)).astype(np.float32))
    assert abs((far.predict(5000.0 + 300.0 * probe) == truth).mean() - (near_zero.predict(probe) == truth).mean()) < 0.02


def test_a_constant_band_gets_scale_one():
    features, labels = vectors(400, 3)
    features[:, 4] = 7.0
    network = classify.make_model(METHOD).fit(features, labels)
    assert network.scale[4] == 1.0 and np.isfinite(network.predict_proba(features)).all()


def test_classes_missing_from_the_samples():
    """Fitted on class indices 0, 2, 3: the columns are those classes, in order."""
    features, labels = vectors(600, 5)
    labels = np.array([0, 2, 3])[labels % 3]
    network = classify.make_model(METHOD).fit(features, labels)
    assert list(network.classes_) == [0, 2, 3] and network.predict_proba(features).shape == (600, 3)


def test_train_fits_one_seeded_hidden_layer():
    features, labels = vectors(300, 3)
    first = classify.make_model(METHOD, seed=7).fit(features, labels)
    again = classify.make_model(METHOD, seed=7).fit(features, labels)
    other = classify.make_model(METHOD, seed=8).fit(features, labels)
    assert [w.shape for w in first.weights] == [(BANDS, HIDDEN_UNITS[0]), (HIDDEN_UNITS[0], 3)]
    np.testing.assert_array_equal(first.weights[0], again.weights[0])
    assert not np.array_equal(first.weights[0], other.weights[0])


def test_cross_validation_runs_on_the_network():
    features, labels = vectors(300, 3)
    groups = np.arange(300) % 10
    predicted = classify.cross_validate(features, labels, groups, METHOD, folds=3)
    assert predicted.shape == labels.shape and (predicted == labels).mean() > 0.5


# ---------------------------------------------------------------- model files


def band_names():
    return [f"A{i:02d}" for i in range(BANDS)]


def saved(tmp_path, network, n_classes, name="model.npz"):
    path = tmp_path / name
    TrainedModel(network, [f"class {i}" for i in range(n_classes)], band_names(), "aef", METHOD).save(path)
    return path


@pytest.mark.parametrize("n_classes", [4, 2])
def test_round_trip_through_a_model_file(tmp_path, n_classes):
    network, reference = fitted_pair(n_classes)
    loaded = load_model(str(saved(tmp_path, network, n_classes)))
    assert loaded.method == METHOD and type(loaded.estimator) is NeuralNetworkPredictor
    probe = vectors(3000, n_classes, seed=4)[0]
    assert_predicts_as(reference, loaded.estimator, probe)
    index, confidence = loaded.predict(probe)
    expected = reference[1].predict_proba(reference[0].transform(probe.astype(np.float64)))
    np.testing.assert_array_equal(index, reference[1].classes_[expected.argmax(axis=1)])
    np.testing.assert_allclose(confidence, expected.max(axis=1), rtol=0, atol=TOLERANCE)


def _header(change):
    def edit(header):
        change(header["predictor"])

    return edit


MALFORMED_ARRAYS = {
    "NaN weight": (set_array("weight_0", lambda a: np.full_like(a["weight_0"], np.nan)), ["layer 1 weights", "NaN"]),
    "infinite output bias": (set_array("bias_1", lambda a: np.full_like(a["bias_1"], np.inf)), ["layer 2 biases"]),
    "zero band scale": (set_array("scale", lambda a: np.zeros_like(a["scale"])), ["band scales", "positive"]),
    "NaN band mean": (set_array("mean", lambda a: np.full_like(a["mean"], np.nan)), ["band means"]),
    "weights of other bands": (set_array("weight_0", lambda a: a["weight_0"][:-1]), ["weight_0", "shape"]),
    "no output layer": (lambda arrays: arrays.pop("weight_1"), ["missing"]),
}

MALFORMED_HEADERS = {
    "hidden layers not a list": (_header(lambda p: p.update(hidden=128)), ["hidden layers"]),
    "too many hidden layers": (_header(lambda p: p.update(hidden=[8] * 9)), ["hidden layers"]),
    "a hidden layer of no units": (_header(lambda p: p.update(hidden=[0])), ["hidden layer sizes"]),
    "a huge hidden layer": (_header(lambda p: p.update(hidden=[10**9])), ["hidden layer sizes"]),
    "hidden sizes that do not match the arrays": (_header(lambda p: p.update(hidden=[64])), ["shape"]),
}


@pytest.mark.parametrize("edit, words", MALFORMED_ARRAYS.values(), ids=MALFORMED_ARRAYS.keys())
def test_malformed_arrays_are_refused_in_one_line(tmp_path, edit, words):
    network, _ = fitted_pair(3)
    path = tampered(saved(tmp_path, network, 3), tmp_path / "tampered.npz", change_arrays=edit)
    assert_refused(path, words)


@pytest.mark.parametrize("edit, words", MALFORMED_HEADERS.values(), ids=MALFORMED_HEADERS.keys())
def test_malformed_headers_are_refused_in_one_line(tmp_path, edit, words):
    network, _ = fitted_pair(3)
    path = tampered(saved(tmp_path, network, 3), tmp_path / "tampered.npz", change_header=edit)
    assert_refused(path, words)


def assert_refused(path, words):
    with pytest.raises(GeoEmbedError) as info:
        load_model(str(path))
    message = assert_one_line(info.value)
    assert all(word.lower() in message.lower() for word in ["geoembed:train", *words]), message


def test_the_tampering_keeps_a_valid_model_valid(tmp_path):
    network, reference = fitted_pair(3)
    loaded = load_model(str(tampered(saved(tmp_path, network, 3), tmp_path / "same.npz")))
    assert_predicts_as(reference, loaded.estimator, vectors(500, 3, seed=5)[0])
