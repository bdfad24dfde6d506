"""The data-only model file: every method train offers predicts as the fitted scikit-learn model after a save and a
load (without scikit-learn), and every file that is not such a model, a pickle above all, is refused in one line
without running anything.

Expectations come from scikit-learn itself (the fitted estimators' predict / predict_proba), not from geoembed.
"""

import json
import os
import pickle
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from geoembed.analysis import classify, model_file
from geoembed.analysis.classify import TrainedModel, load_model
from geoembed.loaders.errors import GeoEmbedError
from tests.support.model_files import (
    WritesAFile,
    header_of,
    members_of,
    npy,
    npy_claiming,
    object_array_that_writes,
    pickle_that_writes,
    rewrite,
    set_array,
)
from tests.support.model_files import tampered as support_tampered
from tests.unit.helpers import assert_one_line, leftovers

sklearn = pytest.importorskip("sklearn")

BANDS = 64
CLASSES = 5
TRAIN = 3000
PROBE = 6000
TOLERANCE = 1e-6


def vectors(n, n_classes=CLASSES, seed=0, overlap=1.5):
    """(float32 (n, BANDS) features, labels): overlapping Gaussian classes, so probabilities are not all 0 or 1."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(size=(n_classes, BANDS))
    labels = rng.integers(0, n_classes, n)
    return (centres[labels] + overlap * rng.normal(size=(n, BANDS))).astype(np.float32), labels


def band_names(count=BANDS):
    return [f"A{i:02d}" for i in range(count)]


def fitted(method, n_classes=CLASSES, labels_used=None):
    features, labels = vectors(TRAIN, n_classes)
    if labels_used is not None:  # classes missing from the samples: the estimator sees a subset of the names
        labels = np.asarray(labels_used)[labels % len(labels_used)]
    return classify.make_model(method).fit(features, labels)


def saved(tmp_path, estimator, method, n_classes=CLASSES, name="model.npz"):
    path = tmp_path / name
    names = [f"class {i}" for i in range(n_classes)]
    TrainedModel(estimator, names, band_names(), "aef", method, report={"accuracy": 0.5, "counts": [1] * n_classes}).save(path)
    return path


def assert_same_predictions(estimator, loaded, probe):
    expected = estimator.predict_proba(probe)
    got = loaded.estimator.predict_proba(probe)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE)
    np.testing.assert_array_equal(loaded.estimator.predict(probe), estimator.predict(probe))
    np.testing.assert_array_equal(loaded.estimator.classes_, estimator.classes_)
    index, confidence = loaded.predict(probe)
    np.testing.assert_array_equal(index, estimator.predict(probe))
    np.testing.assert_allclose(confidence, expected.max(axis=1), rtol=0, atol=TOLERANCE)


# ---------------------------------------------------------------- the same predictions after a round trip


@pytest.mark.parametrize("method", classify.METHODS)
def test_round_trip_predicts_as_the_fitted_model(tmp_path, method):
    estimator = fitted(method)
    path = saved(tmp_path, estimator, method)
    assert leftovers(tmp_path) == ["model.npz"]
    loaded = load_model(str(path))
    assert loaded.method == method and loaded.product == "aef" and loaded.band_names == tuple(band_names())
    assert loaded.class_names == [f"class {i}" for i in range(CLASSES)]
    assert loaded.report == {"accuracy": 0.5, "counts": [1] * CLASSES}
    assert set(loaded.versions) == {"geoembed", "numpy", "python", "sklearn"}
    probe, _ = vectors(PROBE, seed=1)
    assert_same_predictions(estimator, loaded, probe)
    assert_same_predictions(estimator, loaded, probe.astype(np.float64))  # a float64 block predicts alike


@pytest.mark.parametrize("method", classify.METHODS)
def test_two_classes(tmp_path, method):
    """Binary models: logistic regression keeps one row of coefficients and the logistic [1 - p, p]."""
    estimator = fitted(method, n_classes=2)
    loaded = load_model(str(saved(tmp_path, estimator, method, n_classes=2)))
    assert_same_predictions(estimator, loaded, vectors(PROBE, n_classes=2, seed=2)[0])


@pytest.mark.parametrize("method", classify.METHODS)
def test_classes_missing_from_the_samples(tmp_path, method):
    """Fitted on class indices 0, 2, 3 of five names: predictions are those indices, not column numbers."""
    estimator = fitted(method, labels_used=[0, 2, 3])
    loaded = load_model(str(saved(tmp_path, estimator, method)))
    probe = vectors(PROBE, seed=3)[0]
    assert_same_predictions(estimator, loaded, probe)
    assert set(np.unique(loaded.predict(probe)[0])) <= {0, 2, 3}


def test_one_vs_rest_logistic_regression(tmp_path):
    """scikit-learn < 1.7 could fit one-vs-rest logistic regression: its normalised logistic is kept."""
    from sklearn.linear_model import LogisticRegression

    if "multi_class" not in LogisticRegression().get_params():
        pytest.skip("this scikit-learn only fits multinomial logistic regression")
    features, labels = vectors(TRAIN)
    estimator = LogisticRegression(multi_class="ovr", max_iter=2000).fit(features, labels)
    loaded = load_model(str(saved(tmp_path, estimator, "logistic_regression")))
    assert_same_predictions(estimator, loaded, vectors(PROBE, seed=4)[0])


def test_knn_query_on_training_vectors(tmp_path):
    """A query equal to training vectors (distance 0) takes only their votes, as scikit-learn weighs them."""
    estimator = fitted("knn")
    loaded = load_model(str(saved(tmp_path, estimator, "knn")))
    features, _ = vectors(TRAIN)
    probe = np.concatenate([features[:500], features[:50] + np.float32(1e-3)])
    assert_same_predictions(estimator, loaded, probe)


def test_knn_ties_at_the_kth_place_keep_the_lower_index(tmp_path):
    """Duplicated training vectors with different labels, tied for the k-th place: the lower training index wins.

    scikit-learn's choice among such ties follows its BLAS rounding of equal distances (it differs from query to
    query); the saved model's is deterministic. Expected here from a plain sort of exact distances."""
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(5)
    base = rng.normal(size=(40, BANDS)).astype(np.float32)
    features = np.concatenate([base] * 4)  # every vector four times, each copy another label
    labels = np.repeat(np.arange(4), 40)
    estimator = KNeighborsClassifier(n_neighbors=5, weights="distance", algorithm="brute").fit(features, labels)
    loaded = load_model(str(saved(tmp_path, estimator, "knn", n_classes=4)))
    probe = (base + rng.normal(scale=0.01, size=base.shape)).astype(np.float32)
    exact = np.sqrt(((probe[:, None, :].astype(np.float64) - features[None].astype(np.float64)) ** 2).sum(axis=-1))
    nearest = np.argsort(exact, axis=1, kind="stable")[:, :5]
    votes = np.zeros((len(probe), 4))
    for column in range(5):
        votes[np.arange(len(probe)), labels[nearest[:, column]]] += 1 / exact[np.arange(len(probe)), nearest[:, column]]
    expected = votes / votes.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(loaded.estimator.predict_proba(probe), expected, rtol=0, atol=TOLERANCE)
    # the four copies at the top are each class once, so the fifth neighbour decides: the copy of lowest index
    np.testing.assert_array_equal(loaded.estimator.predict(probe), labels[nearest[:, 4]])


def test_forest_prediction_is_block_friendly(tmp_path):
    """Blocks of any size (one pixel, odd sizes) give the rows of the whole-array prediction."""
    estimator = fitted("random_forest")
    loaded = load_model(str(saved(tmp_path, estimator, "random_forest")))
    probe = vectors(1001, seed=6)[0]
    whole = loaded.estimator.predict_proba(probe)
    parts = np.concatenate([loaded.estimator.predict_proba(probe[i : i + 97]) for i in range(0, len(probe), 97)])
    np.testing.assert_array_equal(parts, whole)
    np.testing.assert_array_equal(loaded.estimator.predict_proba(probe[:1]), whole[:1])
    assert loaded.estimator.predict_proba(probe[:0]).shape == (0, CLASSES)


NO_SKLEARN = """
import sys
sys.modules["sklearn"] = None  # any import of scikit-learn now fails
import numpy as np
from geoembed.analysis.classify import load_model
folder = sys.argv[1]
for method in sys.argv[2:]:
    model = load_model(f"{folder}/{method}.npz")
    probe = np.load(f"{folder}/probe.npy")
    np.save(f"{folder}/{method}-proba.npy", model.estimator.predict_proba(probe))
    np.save(f"{folder}/{method}-index.npy", model.predict(probe)[0])
assert not any(name.startswith("sklearn.") for name in sys.modules), "scikit-learn was imported"
"""


def test_loading_and_predicting_needs_no_sklearn(tmp_path):
    probe = vectors(PROBE, seed=7)[0]
    np.save(tmp_path / "probe.npy", probe)
    estimators = {method: fitted(method) for method in classify.METHODS}
    for method, estimator in estimators.items():
        saved(tmp_path, estimator, method, name=f"{method}.npz")
    completed = subprocess.run(
        [sys.executable, "-c", NO_SKLEARN, str(tmp_path), *classify.METHODS],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        cwd=os.getcwd(),
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    for method, estimator in estimators.items():
        expected = estimator.predict_proba(probe)
        np.testing.assert_allclose(np.load(tmp_path / f"{method}-proba.npy"), expected, rtol=0, atol=TOLERANCE)
        np.testing.assert_array_equal(np.load(tmp_path / f"{method}-index.npy"), estimator.predict(probe))


# ---------------------------------------------------------------- refusals


def refused(path, *words):
    with pytest.raises(GeoEmbedError) as info:
        load_model(str(path))
    message = assert_one_line(info.value)
    assert all(word.lower() in message.lower() for word in words), message
    return message


def test_the_crafted_pickle_really_writes_a_file(tmp_path):
    marker = tmp_path / "proof.txt"
    pickle.loads(pickle.dumps(WritesAFile(marker)))
    assert marker.exists()


def test_a_pickle_that_would_write_a_file_is_never_opened(tmp_path):
    marker = tmp_path / "pwned.txt"
    path = pickle_that_writes(tmp_path / "model.pkl", marker)
    refused(path, "pickle", "can run code", "not opened", "geoembed:train")
    assert not marker.exists()


@pytest.mark.parametrize("protocol", range(2, pickle.HIGHEST_PROTOCOL + 1))
def test_old_pickled_models_get_the_pickle_line(tmp_path, protocol):
    path = tmp_path / "old.pkl"
    path.write_bytes(pickle.dumps({"format": "geoembed-model-1", "model": [1, 2]}, protocol=protocol))
    refused(path, "pickle", "retrain")


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", ["empty"]),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 64, ["not a GeoEmbed model"]),
        (b"hello world\n", ["not a GeoEmbed model"]),
        (b"(dp0\nS'model'\np1\nI1\ns.", ["not a GeoEmbed model"]),  # a protocol 0 pickle
        (b"PK\x03\x04\x14\x00\x00\x00", ["not a GeoEmbed model"]),
        (b"PK\x05\x06" + b"\0" * 18, ["not a GeoEmbed model"]),  # an empty zip
    ],
    ids=["empty", "png", "text", "pickle-0", "zip-magic-only", "empty-zip"],
)
def test_wrong_magic(tmp_path, content, words):
    path = tmp_path / "model.npz"
    path.write_bytes(content)
    refused(path, *words)


def test_an_npz_with_an_object_array_is_not_unpickled(tmp_path):
    marker = tmp_path / "pwned.txt"
    members = members_of(valid_model(tmp_path))
    members["centroids.npy"] = object_array_that_writes(marker)
    path = rewrite(tmp_path / "tampered.npz", members)
    refused(path, "centroids", "|O")
    assert not marker.exists()


def test_an_object_header_is_not_unpickled(tmp_path):
    marker = tmp_path / "pwned.txt"
    members = members_of(valid_model(tmp_path))
    members["header.npy"] = npy(np.array(WritesAFile(marker), dtype=object), allow_pickle=True)
    refused(rewrite(tmp_path / "tampered.npz", members), "header")
    assert not marker.exists()


# A valid nearest-centroid model, taken apart and put back together with one thing changed.


def valid_model(tmp_path, method="nearest_centroid", n_classes=3):
    features, labels = vectors(300, n_classes)
    estimator = classify.make_model(method).fit(features, labels)
    return saved(tmp_path, estimator, method, n_classes=n_classes, name=f"valid-{method}.npz")


def tampered(tmp_path, change_header=None, change_arrays=None, method="nearest_centroid"):
    return support_tampered(valid_model(tmp_path, method), tmp_path / "tampered.npz", change_header, change_arrays)


def test_the_tampering_helpers_keep_a_valid_model_valid(tmp_path):
    for method in classify.METHODS:
        load_model(str(tampered(tmp_path, method=method)))


HEADER_TAMPERING = {
    "format name": (lambda h: h.update(format="other-model"), ["format"]),
    "format version": (lambda h: h.update(version=2), ["version 2"]),
    "version as text": (lambda h: h.update(version="1"), ["no format version"]),
    "class names not a list": (lambda h: h.update(class_names="abc"), ["class_names"]),
    "band names empty": (lambda h: h.update(band_names=[]), ["band_names"]),
    "no predictor": (lambda h: h.pop("predictor"), ["predictor"]),
    "unknown kind": (lambda h: h["predictor"].update(kind="os.system"), ["kind"]),
    "negative count": (lambda h: h["predictor"].update(classes=-1), ["count"]),
    "count as float": (lambda h: h["predictor"].update(classes=3.0), ["count"]),
    "more classes than names": (lambda h: h.update(class_names=["a", "b"]), ["classes"]),
    "more bands than arrays": (lambda h: h.update(band_names=band_names(BANDS + 1)), ["shape"]),
}


@pytest.mark.parametrize("change", HEADER_TAMPERING.values(), ids=HEADER_TAMPERING.keys())
def test_tampered_header(tmp_path, change):
    edit, words = change
    refused(tampered(tmp_path, change_header=edit), "geoembed:train", *words)


def test_header_that_is_not_json(tmp_path):
    members = members_of(valid_model(tmp_path))
    members["header.npy"] = npy(np.array('{"format": "geoembed-model", "version": 1,'))
    refused(rewrite(tmp_path / "tampered.npz", members), "not valid JSON")


def test_header_deeply_nested(tmp_path):
    members = members_of(valid_model(tmp_path))
    members["header.npy"] = npy(np.array("[" * 100000 + "]" * 100000))
    refused(rewrite(tmp_path / "tampered.npz", members), "geoembed:train")


def test_header_of_numbers_not_text(tmp_path):
    members = members_of(valid_model(tmp_path))
    members["header.npy"] = npy(np.arange(10))
    refused(rewrite(tmp_path / "tampered.npz", members), "header", "<i8")


def _drop(name):
    return lambda arrays: arrays.pop(name)


def _tree_edit(edit):
    def change(arrays):
        left, right = arrays["left"].astype(np.int64), arrays["right"].astype(np.int64)
        edit(left, right, arrays)
        arrays.update(left=left, right=right)

    return change


def _first_inner(left):
    return int(np.flatnonzero(left >= 0)[0])


ARRAY_TAMPERING = {
    "missing array": ("nearest_centroid", _drop("centroids"), ["missing"]),
    "extra array": ("nearest_centroid", set_array("script", lambda a: np.zeros(3)), ["extra"]),
    "centroids of other bands": (
        "nearest_centroid",
        set_array("centroids", lambda a: np.zeros((3, BANDS + 1))),
        ["centroids", "shape"],
    ),
    "NaN centroids": ("nearest_centroid", set_array("centroids", lambda a: np.full((3, BANDS), np.nan)), ["NaN"]),
    "classes out of range": ("nearest_centroid", set_array("classes", lambda a: np.array([0, 1, 7])), ["class"]),
    "classes as text": ("nearest_centroid", set_array("classes", lambda a: np.array(["a", "b", "c"])), ["classes"]),
    "big-endian": ("nearest_centroid", set_array("centroids", lambda a: a["centroids"].astype(">f8")), [">f8"]),
    "Fortran order": (
        "nearest_centroid",
        set_array("centroids", lambda a: np.asfortranarray(a["centroids"])),
        ["centroids", "Fortran"],
    ),
    "coef not classes x bands": (
        "logistic_regression",
        set_array("coef", lambda a: np.zeros((3, BANDS - 1))),
        ["coef", "shape"],
    ),
    "intercept missing": ("logistic_regression", _drop("intercept"), ["missing"]),
    "knn labels out of range": ("knn", set_array("labels", lambda a: a["labels"] + 10), ["labels"]),
    "knn fewer vectors than the header": ("knn", set_array("vectors", lambda a: a["vectors"][:-1]), ["vectors", "shape"]),
    "tree child outside its tree": (
        "random_forest",
        _tree_edit(lambda left, right, a: left.__setitem__(_first_inner(left), a["starts"][1] + 5)),
        ["tree"],
    ),
    "tree child pointing back up (a loop)": (
        "random_forest",
        _tree_edit(lambda left, right, a: left.__setitem__(1, 0)),
        ["tree"],
    ),
    "tree child pointing at itself": (
        "random_forest",
        _tree_edit(lambda left, right, a: right.__setitem__(_first_inner(left), _first_inner(left))),
        ["tree"],
    ),
    "tree node with one child": (
        "random_forest",
        _tree_edit(lambda left, right, a: right.__setitem__(_first_inner(left), -1)),
        ["tree"],
    ),
    "tree node with two parents": (
        "random_forest",
        _tree_edit(lambda left, right, a: right.__setitem__(_first_inner(left), left[_first_inner(left)])),
        ["parent"],
    ),
    "tree child index huge": (
        "random_forest",
        _tree_edit(lambda left, right, a: left.__setitem__(0, 2**62)),
        ["tree"],
    ),
    "tree splits on a band that does not exist": (
        "random_forest",
        set_array("feature", lambda a: np.where(a["left"] >= 0, BANDS, 0)),
        ["band"],
    ),
    "tree starts past the nodes": (
        "random_forest",
        set_array("starts", lambda a: a["starts"] + 1),
        ["starts"],
    ),
    "a leaf without a value": (
        "random_forest",
        set_array("leaf_value", lambda a: a["leaf_value"][:-1]),
        ["leaf_value", "shape"],
    ),
    "negative leaf values": ("random_forest", set_array("leaf_value", lambda a: -a["leaf_value"]), ["negative"]),
}


@pytest.mark.parametrize("change", ARRAY_TAMPERING.values(), ids=ARRAY_TAMPERING.keys())
def test_tampered_arrays(tmp_path, change):
    method, edit, words = change
    refused(tampered(tmp_path, change_arrays=edit, method=method), "geoembed:train", *words)


@pytest.mark.parametrize(
    ("change_header", "member_shape", "words"),
    [
        (None, (10**9, BANDS), ["shape"]),  # the member alone claims 512 GB
        (lambda h: h["predictor"].update(samples=10**8), (10**8, BANDS), ["GiB"]),  # header and member agree
        (lambda h: h["predictor"].update(samples=2**40), (2**40, BANDS), ["GiB"]),
    ],
    ids=["member-claims-huge", "header-claims-huge", "header-claims-absurd"],
)
def test_huge_shapes_are_refused_before_allocating(tmp_path, change_header, member_shape, words):
    members = members_of(valid_model(tmp_path, "knn"))
    header = header_of(members)
    if change_header:
        change_header(header)
    members["header.npy"] = npy(np.array(json.dumps(header)))
    members["vectors.npy"] = npy_claiming(member_shape, "<f4")
    refused(rewrite(tmp_path / "tampered.npz", members), *words)


def test_member_shorter_than_its_shape(tmp_path):
    members = members_of(valid_model(tmp_path))
    members["centroids.npy"] = npy_claiming((3, BANDS), data=b"\0" * 100)
    refused(rewrite(tmp_path / "tampered.npz", members), "size")


def test_zip_bomb_member(tmp_path):
    """A member that inflates to 1.5 GB: its declared size is refused, nothing is inflated."""
    members = members_of(valid_model(tmp_path))
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        with archive.open("padding.npy", "w", force_zip64=True) as member:
            chunk = b"\0" * 2**24
            for _ in range(96):
                member.write(chunk)
    assert path.stat().st_size < 10 * 2**20
    refused(path, "geoembed:train")


def test_zip_of_many_members(tmp_path):
    members = members_of(valid_model(tmp_path))
    members.update({f"extra{i}.npy": npy(np.zeros(1)) for i in range(100)})
    refused(rewrite(tmp_path / "tampered.npz", members), "members")


def test_duplicate_members(tmp_path):
    members = members_of(valid_model(tmp_path))
    path = rewrite(tmp_path / "tampered.npz", members)
    with pytest.warns(UserWarning), zipfile.ZipFile(path, "a") as archive:
        archive.writestr("centroids.npy", npy(np.zeros((3, BANDS))))
    refused(path, "duplicate", "centroids")


def test_truncated_models(tmp_path):
    data = valid_model(tmp_path, "random_forest").read_bytes()
    for size in (10, 100, len(data) // 3, len(data) // 2, len(data) - 30, len(data) - 1):
        path = tmp_path / f"cut{size}.npz"
        path.write_bytes(data[:size])
        refused(path, "geoembed:train")


def test_flipped_bytes_never_escape_as_another_error(tmp_path):
    """Every single-byte corruption of a model is either refused in one line or still a working model."""
    data = bytearray(valid_model(tmp_path, "random_forest").read_bytes())
    rng = np.random.default_rng(11)
    probe = vectors(50)[0]
    for trial, position in enumerate(rng.integers(0, len(data), 150)):
        corrupt = bytearray(data)
        corrupt[position] ^= int(rng.integers(1, 256))
        path = tmp_path / f"flip{trial}.npz"
        path.write_bytes(bytes(corrupt))
        try:
            load_model(str(path)).predict(probe)
        except GeoEmbedError as error:
            assert_one_line(error)


def test_missing_file_and_folder(tmp_path):
    refused(tmp_path / "nope.npz", "does not exist")
    refused(tmp_path, "folder")


def test_header_member_too_big(tmp_path):
    members = members_of(valid_model(tmp_path))
    header = header_of(members)
    header["report"]["padding"] = "x" * (model_file.MAX_HEADER_BYTES // 4)
    members["header.npy"] = npy(np.array(json.dumps(header)))
    refused(rewrite(tmp_path / "tampered.npz", members), "header", "bytes")


def test_integers_are_stored_as_int32_and_floats_as_fitted(tmp_path):
    path = saved(tmp_path, fitted("knn"), "knn")
    with zipfile.ZipFile(path) as archive:
        kinds = {name: np.lib.format.read_array_header_1_0(_opened(archive, name))[2].str for name in archive.namelist()}
    assert kinds["labels.npy"] == kinds["classes.npy"] == "<i4"
    assert kinds["vectors.npy"] == "<f4"  # fitted on float32 features, kept so


def _opened(archive, name):
    stream = archive.open(name)
    np.lib.format.read_magic(stream)
    return stream


def test_a_model_too_large_for_a_file_is_refused_before_writing(tmp_path, monkeypatch):
    estimator = fitted("random_forest")
    trained = TrainedModel(estimator, [f"c{i}" for i in range(CLASSES)], band_names(), "aef", "random_forest")
    monkeypatch.setattr(model_file, "MAX_MODEL_BYTES", 2**20)
    with pytest.raises(GeoEmbedError) as info:
        trained.check_size()
    assert "random_forest" in assert_one_line(info.value) and "fewer samples" in str(info.value)
    with pytest.raises(GeoEmbedError):
        trained.save(tmp_path / "model.npz")
    assert leftovers(tmp_path) == []


def test_more_leaf_values_than_leaves(tmp_path):
    """Header and arrays agree on one leaf value more than the trees have leaves."""
    path = tampered(
        tmp_path,
        change_header=lambda h: h["predictor"].update(leaves=h["predictor"]["leaves"] + 1),
        change_arrays=lambda a: a.update(leaf_value=np.concatenate([a["leaf_value"], a["leaf_value"][:1]])),
        method="random_forest",
    )
    refused(path, "leaves")
