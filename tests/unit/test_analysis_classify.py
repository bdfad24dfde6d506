"""classify: spatial blocks and folds, blocked CV without leakage, metrics, models, saved models, class rasters."""

import os
import pickle

import numpy as np
import pytest

from geoembed.analysis import classify
from geoembed.analysis.classify import (
    METHODS,
    ClassRasters,
    NearestCentroid,
    TrainedModel,
    blocked_folds,
    cross_validate,
    load_model,
    make_model,
    metrics,
    spatial_blocks,
)
from geoembed.loaders.errors import GeoEmbedError
from geoembed.loaders.raster.grid import Window
from tests.unit.helpers import assert_one_line, leftovers
from tests.unit.test_analysis_memraster import MemRaster, make_grid

BANDS = 8


def centres(n_classes=3, bands=BANDS, seed=0):
    """Well separated unit directions: one per class."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(bands, bands)))
    return basis[:n_classes]


def separable(n_per_class=40, n_classes=3, seed=1, noise=0.05):
    """(features (n, bands), labels 0..n_classes-1): tight clusters around orthogonal directions, varied scale."""
    rng = np.random.default_rng(seed)
    cs = centres(n_classes, seed=seed)
    labels = np.repeat(np.arange(n_classes), n_per_class)
    scale = rng.uniform(0.5, 2.0, size=(len(labels), 1))
    features = (cs[labels] + noise * rng.normal(size=(len(labels), BANDS))) * scale
    return features.astype(np.float32), labels


# ---------------------------------------------------------------- spatial blocks and folds


def test_spatial_blocks_group_samples_by_square():
    rng = np.random.default_rng(2)
    xs, ys = rng.uniform(-350, 420, 300), rng.uniform(-180, 260, 300)
    xs[:5], ys[:5] = 100.0, -100.0  # on block edges
    ids = spatial_blocks(xs, ys, 100.0)
    assert ids.shape == (300,)
    keys = [(int(np.floor(x / 100.0)), int(np.floor(y / 100.0))) for x, y in zip(xs, ys)]
    for i in range(300):
        for j in range(i + 1, 300):
            assert (ids[i] == ids[j]) == (keys[i] == keys[j]), (i, j, keys[i], keys[j])
    assert len(set(ids.tolist())) == len(set(keys))


@pytest.mark.parametrize("folds", [2, 3, 5])
def test_blocked_folds_keep_blocks_whole_and_balance_folds(folds):
    rng = np.random.default_rng(folds)
    sizes = rng.integers(1, 30, 17)
    groups = np.repeat(np.arange(17) * 7 + 3, sizes)  # non-contiguous block ids
    groups = groups[rng.permutation(len(groups))]
    assignment = blocked_folds(groups, folds)
    assert assignment.shape == groups.shape
    assert set(assignment.tolist()) == set(range(folds))
    for block in np.unique(groups):
        assert len(set(assignment[groups == block].tolist())) == 1, f"block {block} split across folds"
    loads = np.bincount(assignment, minlength=folds)
    assert loads.max() - loads.min() <= sizes.max(), f"unbalanced folds {loads}"
    np.testing.assert_array_equal(blocked_folds(groups, folds), assignment)  # deterministic


def test_blocked_folds_balance_many_equal_blocks():
    groups = np.repeat(np.arange(20), 10)
    loads = np.bincount(blocked_folds(groups, 5), minlength=5)
    np.testing.assert_array_equal(loads, [40] * 5)


# ---------------------------------------------------------------- cross-validation


class Recorder:
    """A fake estimator that records what it was fitted on and asked to predict."""

    log = []

    def fit(self, features, labels):
        self.seen = features[:, 0].astype(int).tolist()
        Recorder.log.append({"fit": self.seen, "labels": labels.tolist()})
        return self

    def predict(self, features):
        Recorder.log[-1]["predict"] = features[:, 0].astype(int).tolist()
        return np.full(len(features), self.seen[0] % 3)


def test_cross_validate_never_trains_on_the_test_block(monkeypatch):
    rng = np.random.default_rng(4)
    n = 150
    features = np.zeros((n, 3))
    features[:, 0] = np.arange(n)  # sample index travels in the features
    labels = rng.integers(0, 3, n)
    groups = rng.integers(0, 12, n)
    Recorder.log = []
    monkeypatch.setattr(classify, "make_model", lambda method, seed=0: Recorder())
    predicted = cross_validate(features, labels, groups, "nearest_centroid", folds=4)
    assert predicted is not None and predicted.shape == (n,)
    assert len(Recorder.log) == 4
    predicted_once = []
    for call in Recorder.log:
        trained_blocks = set(groups[call["fit"]].tolist())
        tested_blocks = set(groups[call["predict"]].tolist())
        assert not trained_blocks & tested_blocks, "a model saw its own test block"
        assert sorted(call["fit"] + call["predict"]) == list(range(n))  # train = everything else
        assert call["labels"] == labels[call["fit"]].tolist()
        predicted_once += call["predict"]
    assert sorted(predicted_once) == list(range(n))


def test_cross_validate_with_real_model_has_no_leak():
    # every block holds a class found nowhere else: a model that never saw the block cannot get it right
    features, labels = separable(n_per_class=20, n_classes=4)
    groups = labels * 10 + 5
    predicted = cross_validate(features, labels, groups, "nearest_centroid", folds=4)
    assert (predicted != labels).all()
    # the same samples with blocks mixing classes are predicted perfectly
    groups = np.arange(len(labels)) % 5
    predicted = cross_validate(features, labels, groups, "nearest_centroid", folds=5)
    np.testing.assert_array_equal(predicted, labels)


def test_cross_validate_needs_two_blocks():
    features, labels = separable(n_per_class=5)
    assert cross_validate(features, labels, np.zeros(len(labels), dtype=int), "nearest_centroid") is None


# ---------------------------------------------------------------- metrics


def test_metrics_by_hand():
    classes = ["a", "b", "c", "d"]
    truth = ["a", "a", "a", "b", "b", "c"]
    predicted = ["a", "b", "a", "b", "c", "c"]
    result = metrics(truth, predicted, classes)
    np.testing.assert_array_equal(result["confusion"], [[2, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 0], [0, 0, 0, 0]])
    assert result["accuracy"] == pytest.approx(4 / 6)
    np.testing.assert_allclose(result["precision"], [1.0, 0.5, 0.5, 0.0])
    np.testing.assert_allclose(result["recall"], [2 / 3, 0.5, 1.0, 0.0])
    np.testing.assert_allclose(result["f1"], [0.8, 0.5, 2 / 3, 0.0])
    np.testing.assert_array_equal(result["support"], [3, 2, 1, 0])
    assert not np.isnan(result["f1"]).any()


def test_metrics_perfect_and_empty():
    result = metrics([0, 1, 1], [0, 1, 1], [0, 1])
    assert result["accuracy"] == 1.0
    np.testing.assert_allclose(result["f1"], [1.0, 1.0])
    assert metrics([], [], [0, 1])["accuracy"] == 0.0


# ---------------------------------------------------------------- models


def test_nearest_centroid_separates_clusters():
    features, labels = separable(n_per_class=30, n_classes=3)
    model = NearestCentroid().fit(features, labels)
    test_features, test_labels = separable(n_per_class=25, n_classes=3, seed=1)
    test_features = test_features[::-1].copy()
    test_labels = test_labels[::-1]
    np.testing.assert_array_equal(model.predict(test_features), test_labels)
    proba = model.predict_proba(test_features)
    assert proba.shape == (len(test_labels), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    assert (proba >= 0).all()
    np.testing.assert_array_equal(model.classes_[proba.argmax(axis=1)], test_labels)
    # centroids: the normalised mean of unit vectors, independent of each sample's length
    for index, c in enumerate(model.classes_):
        members = features[labels == c].astype(np.float64)
        mean = (members / np.linalg.norm(members, axis=1, keepdims=True)).mean(axis=0)
        np.testing.assert_allclose(model.centroids_[index], mean / np.linalg.norm(mean), atol=1e-10)


@pytest.mark.parametrize("method", METHODS)
def test_make_model_each_method_fits_separable_data(method):
    features, labels = separable(n_per_class=30, n_classes=3, seed=1)
    model = make_model(method, seed=0).fit(features, labels)
    test_features, test_labels = separable(n_per_class=10, n_classes=3, seed=1)
    assert (model.predict(test_features) == test_labels).mean() == 1.0
    proba = model.predict_proba(test_features)
    # scikit-learn >= 1.8 keeps float32 inputs in float32: a sum of 3 probabilities is then 1 to a few float32 ulps
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=max(1e-9, 4 * np.finfo(proba.dtype).eps))


def test_make_model_types():
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier

    assert isinstance(make_model("random_forest"), RandomForestClassifier)
    assert isinstance(make_model("logistic_regression"), LogisticRegression)
    assert isinstance(make_model("knn"), KNeighborsClassifier)
    assert isinstance(make_model("nearest_centroid"), NearestCentroid)
    with pytest.raises(GeoEmbedError) as info:
        make_model("svm")
    assert "nearest_centroid" in assert_one_line(info.value)


@pytest.mark.parametrize("method", ["random_forest", "logistic_regression", "knn"])
def test_without_sklearn_sklearn_methods_explain_how_to_install(monkeypatch, method):
    monkeypatch.setattr(classify, "has_sklearn", lambda: False)
    with pytest.raises(GeoEmbedError) as info:
        make_model(method)
    message = assert_one_line(info.value)
    assert "python3-sklearn" in message and method in message


def test_without_sklearn_nearest_centroid_still_works(monkeypatch):
    monkeypatch.setattr(classify, "has_sklearn", lambda: False)
    features, labels = separable()
    model = make_model("nearest_centroid").fit(features, labels)
    np.testing.assert_array_equal(model.predict(features), labels)
    trained = TrainedModel(model, ["a", "b", "c"], [f"A{i:02d}" for i in range(BANDS)], "test", "nearest_centroid")
    assert trained.versions["sklearn"] is None


# ---------------------------------------------------------------- saved models


def band_names(count=BANDS):
    return tuple(f"A{i:02d}" for i in range(count))


@pytest.mark.parametrize("method", ["nearest_centroid", "random_forest"])
def test_trained_model_round_trip_predicts_the_same(tmp_path, method):
    features, labels = separable()
    estimator = make_model(method).fit(features, labels)
    trained = TrainedModel(estimator, ["water", "forest", "urban"], band_names(), "aef", method, report={"accuracy": 0.9})
    path = str(tmp_path / "model.npz")
    assert trained.save(path) == path
    assert leftovers(tmp_path) == ["model.npz"]
    loaded = load_model(path)
    assert loaded.class_names == ["water", "forest", "urban"]
    assert loaded.band_names == band_names() and loaded.product == "aef" and loaded.method == method
    assert loaded.report == {"accuracy": 0.9}
    probe, probe_labels = separable(n_per_class=15, seed=1)
    index, probability = trained.predict(probe)
    loaded_index, loaded_probability = loaded.predict(probe)
    np.testing.assert_array_equal(loaded_index, index)
    np.testing.assert_allclose(loaded_probability, probability, rtol=0, atol=0)
    np.testing.assert_array_equal(index, probe_labels)


def test_trained_model_predict_maps_to_class_indices():
    # an estimator that saw only classes 0 and 2 of three: indices must come from classes_, not column numbers
    features, labels = separable(n_classes=3)
    keep = labels != 1
    trained = TrainedModel(NearestCentroid().fit(features[keep], labels[keep]), ["a", "b", "c"], band_names(), "t", "nc")
    index, probability = trained.predict(features[keep])
    np.testing.assert_array_equal(index, labels[keep])
    assert ((probability > 0) & (probability <= 1)).all()


def test_load_model_missing_file(tmp_path):
    path = str(tmp_path / "nope.pkl")
    with pytest.raises(GeoEmbedError) as info:
        load_model(path)
    assert path in assert_one_line(info.value)


def _random_files(folder):
    rng = np.random.default_rng(123)
    paths = []
    for index in range(60):
        path = os.path.join(folder, f"random{index}.bin")
        with open(path, "wb") as out:
            out.write(rng.integers(0, 256, int(rng.integers(1, 300)), dtype=np.uint8).tobytes())
        paths.append(path)
    texts = {
        "text.txt": b"hello world\n",
        "labels.csv": b"x,y,class\n1,2,water\n",
        "style.json": b'{"a": 1}',
        "empty.pkl": b"",
        "zip.pkl": b"PK\x03\x04\x14\x00\x00\x00",
        "png.pkl": b"\x89PNG\r\n\x1a\n",
    }
    for name, content in texts.items():
        path = os.path.join(folder, name)
        with open(path, "wb") as out:
            out.write(content)
        paths.append(path)
    return paths


def test_load_model_on_random_files_is_a_one_line_error(tmp_path):
    failures = []
    for path in _random_files(str(tmp_path)):
        try:
            load_model(path)
        except GeoEmbedError as error:
            assert_one_line(error)
        except Exception as error:  # noqa: BLE001 - the point is to see which escape
            failures.append(f"{os.path.basename(path)}: {type(error).__name__}: {error}")
        else:
            failures.append(f"{os.path.basename(path)}: loaded without error")
    assert not failures, "not a one-line GeoEmbedError:\n" + "\n".join(failures)


@pytest.mark.parametrize(
    "content",
    [
        b"\x8d" + b"\xff" * 8 + b"abc",  # BINUNICODE8 with an impossible length -> OverflowError
        b"\x80\x04\x8e" + (1 << 60).to_bytes(8, "little") + b"xx",  # BINBYTES8 of 1 EiB -> MemoryError
        b"Mw\x99\x98a",  # BININT2 then junk -> TypeError
    ],
    ids=["overflow", "memory", "type"],
)
def test_load_model_on_corrupt_pickle_headers(tmp_path, content):
    path = tmp_path / "corrupt.model"
    path.write_bytes(content)
    with pytest.raises(GeoEmbedError) as info:
        load_model(str(path))
    assert_one_line(info.value)


def test_load_model_on_a_folder(tmp_path):
    with pytest.raises(GeoEmbedError) as info:
        load_model(str(tmp_path))
    assert_one_line(info.value)


@pytest.mark.parametrize("payload", [{"format": "other", "model": 1}, [1, 2, 3], {"model": 1}])
def test_load_model_on_other_pickles(tmp_path, payload):
    """Pickles are never opened (tests/unit/test_model_file.py has the ones that would run code)."""
    path = tmp_path / "other.pkl"
    path.write_bytes(pickle.dumps(payload))
    with pytest.raises(GeoEmbedError) as info:
        load_model(str(path))
    message = assert_one_line(info.value)
    assert "pickle" in message and "geoembed:train" in message


def test_check_bands_refuses_other_bands():
    features, labels = separable()
    trained = TrainedModel(NearestCentroid().fit(features, labels), ["a", "b", "c"], band_names(), "aef", "nearest_centroid")
    trained.check_bands(band_names())
    for other in (tuple(f"B{i:02d}" for i in range(BANDS)), band_names(BANDS + 2), band_names(3)):
        with pytest.raises(GeoEmbedError) as info:
            trained.check_bands(other)
        assert "aef" in assert_one_line(info.value)
    raster = MemRaster(np.ones((3, 2, 2)), np.ones((2, 2), bool), make_grid(2, 2))
    with pytest.raises(GeoEmbedError):
        ClassRasters(raster, trained)


# ---------------------------------------------------------------- class rasters


def test_class_rasters_produce_classes_and_confidence():
    n_classes, height, width = 3, 23, 31
    rng = np.random.default_rng(7)
    cs = centres(n_classes, seed=1)
    truth = rng.integers(0, n_classes, (height, width))
    vectors = cs[truth] + 0.05 * rng.normal(size=(height, width, BANDS))
    values = vectors.transpose(2, 0, 1) * rng.uniform(0.5, 2, (height, width))
    valid = rng.random((height, width)) > 0.2
    valid[5:12, 20:31] = False  # a whole nodata block
    raster = MemRaster(values, valid, make_grid(width, height), band_names())
    features, labels = separable(n_classes=n_classes, seed=1)
    trained = TrainedModel(NearestCentroid().fit(features, labels), ["x", "y", "z"], band_names(), "test", "nc")
    producer = ClassRasters(raster, trained)
    classes = np.full((height, width), 99, dtype=np.int64)
    confidence = np.full((height, width), -1.0)
    for window in [Window(0, 0, 16, 16), Window(16, 0, 15, 16), Window(0, 16, 31, 7), Window(20, 5, 11, 7)]:
        class_block, confidence_block = producer.produce(window)
        assert class_block.values.dtype == np.uint8
        assert class_block.values.shape == confidence_block.values.shape == (window.height, window.width)
        rows = slice(window.row, window.row + window.height)
        cols = slice(window.col, window.col + window.width)
        np.testing.assert_array_equal(class_block.valid, valid[rows, cols])
        classes[rows, cols] = class_block.values
        confidence[rows, cols] = confidence_block.values
    assert not (classes == 99).any()
    np.testing.assert_array_equal(classes[valid], truth[valid] + 1)
    assert (classes[~valid] == 0).all()
    assert ((confidence[valid] > 0) & (confidence[valid] <= 1)).all()
    assert set(np.unique(classes[valid]).tolist()) == {1, 2, 3}


def test_class_rasters_all_nodata_window():
    raster = MemRaster(np.zeros((BANDS, 4, 4)), np.zeros((4, 4), bool), make_grid(4, 4), band_names())
    features, labels = separable()
    trained = TrainedModel(NearestCentroid().fit(features, labels), ["x", "y", "z"], band_names(), "test", "nc")
    class_block, confidence_block = ClassRasters(raster, trained).produce(Window(0, 0, 4, 4))
    assert (class_block.values == 0).all() and not class_block.valid.any()
    assert (confidence_block.values == 0).all()
