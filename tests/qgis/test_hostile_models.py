"""Hostile and damaged MODEL files for geoembed:classify: each is refused in one line before anything is read or
written (tests/qgis/refusals.assert_refused: no output, under 10 s and 1.5 GB), and nothing in it ever runs (files
whose unpickling would create a marker file: the marker never appears). And the other way round: a model saved by
geoembed:train, for every method, classifies the raster it was trained on exactly as train mapped it.

classify is the only algorithm that takes a GeoEmbed classifier model (pca's MODEL_IN is a JSON PCA model, covered in
test_analysis_pca_cluster.py).
"""

import shutil
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from geoembed.analysis.classify import METHODS, NearestCentroid, TrainedModel
from tests.support import model_files as mf

from .labelled_embedding import labels_layer, load_labelled
from .refusals import assert_refused, run


@pytest.fixture(scope="module")
def embedding(provider_ready, aef_mirror, tmp_path_factory):
    """A GeoEmbed layer (geoembed:load), its CRS and a grid of labelled points on it (three classes by position)."""
    return load_labelled(aef_mirror, tmp_path_factory.mktemp("hostile-models"))


@pytest.fixture(scope="module")
def trained(embedding, tmp_path_factory):
    """{method: {OUTPUT, OUTPUT_CONFIDENCE, OUTPUT_MODEL}} of geoembed:train on the embedding, each method once."""
    runs = {}
    for method in METHODS:
        folder = tmp_path_factory.mktemp(f"train-{method}")
        outputs = {
            "OUTPUT": str(folder / "classes.tif"),
            "OUTPUT_CONFIDENCE": str(folder / "confidence.tif"),
            "OUTPUT_MODEL": str(folder / "model.npz"),
        }
        parameters = {"INPUT": embedding["path"], "TRAINING": labels_layer(embedding), "FIELD": "class", "METHOD": method}
        results = run("train", {**parameters, **outputs})
        assert results["OUTPUT_MODEL"] == outputs["OUTPUT_MODEL"]
        runs[method] = outputs
    return runs


def read(path):
    dataset = gdal.Open(path)
    values = dataset.ReadAsArray()
    dataset = None
    return values


@pytest.mark.parametrize("method", METHODS)
def test_a_saved_model_classifies_as_train_mapped(embedding, trained, tmp_path, method):
    outputs = trained[method]
    classes, confidence = str(tmp_path / "classes.tif"), str(tmp_path / "confidence.tif")
    model = outputs["OUTPUT_MODEL"]
    run("classify", {"INPUT": embedding["path"], "MODEL": model, "OUTPUT": classes, "OUTPUT_CONFIDENCE": confidence})
    np.testing.assert_array_equal(read(classes), read(outputs["OUTPUT"]))
    np.testing.assert_array_equal(read(confidence), read(outputs["OUTPUT_CONFIDENCE"]))
    assert len(np.unique(read(classes))) >= 3  # nodata-free raster: three classes mapped


def test_an_old_extension_still_reaches_the_content_check(embedding, trained, tmp_path):
    """MODEL takes any file name: a valid model named .pkl is used, and refusals are by content, not extension."""
    renamed = tmp_path / "model.pkl"
    shutil.copy(trained["nearest_centroid"]["OUTPUT_MODEL"], renamed)
    output = str(tmp_path / "classes.tif")
    run("classify", {"INPUT": embedding["path"], "MODEL": str(renamed), "OUTPUT": output})
    np.testing.assert_array_equal(read(output), read(trained["nearest_centroid"]["OUTPUT"]))


class Models:
    """Bad model files, built on demand in a scratch folder (not the output folder) from the trained ones; `markers`
    are files that would appear if anything were unpickled."""

    def __init__(self, trained, scratch):
        self.trained, self.scratch, self.markers = trained, scratch, []

    def marker(self):
        path = self.scratch / f"pwned{len(self.markers)}.txt"
        self.markers.append(path)
        return path

    def valid(self, method="random_forest"):
        return self.trained[method]["OUTPUT_MODEL"]

    def pickle_that_writes(self):
        return mf.pickle_that_writes(self.scratch / "model.pkl", self.marker())

    def old_pickle_model(self):
        return mf.pickle_that_writes(self.scratch / "old.pkl", self.marker(), protocol=2)

    def protocol_0_pickle(self):
        path = self.scratch / "model.npz"
        marker = self.marker()
        path.write_bytes(f"c__builtin__\nopen\n(V{marker}\nVw\ntR.".encode())
        return path

    def empty(self):
        path = self.scratch / "empty.npz"
        path.write_bytes(b"")
        return path

    def truncated(self):
        path = self.scratch / "truncated.npz"
        data = Path(self.valid()).read_bytes()
        path.write_bytes(data[: len(data) // 2])
        return path

    def tampered(self, method="random_forest", header=None, arrays=None):
        return mf.tampered(self.valid(method), self.scratch / "tampered.npz", header, arrays)

    def with_member(self, name, data, method="random_forest"):
        return mf.with_member(self.valid(method), self.scratch / "tampered.npz", name, data)

    def huge_member(self):
        return self.with_member("vectors.npy", mf.npy_claiming((10**9, 64), "<f4"), "knn")

    def huge_header(self):
        members = mf.members_of(self.valid("knn"))
        header = mf.header_of(members)
        header["predictor"]["samples"] = 10**8
        members["header.npy"] = mf.header_npy(header)
        members["vectors.npy"] = mf.npy_claiming((10**8, 64), "<f4")
        return mf.rewrite(self.scratch / "huge.npz", members)

    def object_array(self):
        return self.with_member("threshold.npy", mf.object_array_that_writes(self.marker()))

    def not_json(self):
        return self.with_member("header.npy", mf.npy(np.array('{"format": "geoembed-model", "version"')))

    def many_members(self):
        members = mf.members_of(self.valid("nearest_centroid"))
        members.update({f"m{i}.npy": mf.npy(np.zeros(1)) for i in range(200)})
        return mf.rewrite(self.scratch / "many.npz", members)

    def eight_band_model(self):
        """A valid model of another product (8 bands): refused against the 64-band INPUT."""
        features = np.random.default_rng(0).normal(size=(60, 8))
        estimator = NearestCentroid().fit(features, np.arange(60) % 3)
        path = self.scratch / "eight.npz"
        TrainedModel(estimator, ["a", "b", "c"], [f"B{i}" for i in range(8)], "other", "nearest_centroid").save(path)
        return path


def _tree(edit):
    def change(arrays):
        left, right = arrays["left"].copy(), arrays["right"].copy()
        edit(left, right, arrays["starts"])
        arrays.update(left=left, right=right)

    return change


def _inner(left):
    return int(np.flatnonzero(left >= 0)[0])


def _classify(model):
    return lambda m, e, o: {"INPUT": e["path"], "MODEL": model(m), "OUTPUT": o / "c.tif", "OUTPUT_CONFIDENCE": o / "p.tif"}


# (algorithm, case, parameters built from (models, embedding, output folder), words the one-line message must hold)
HOSTILE_MODELS = [
    ("classify", "pickle that would write a file", _classify(lambda m: m.pickle_that_writes()), ["pickle", "not opened"]),
    ("classify", "old GeoEmbed pickle model", _classify(lambda m: m.old_pickle_model()), ["older GeoEmbed", "retrain"]),
    ("classify", "protocol-0 pickle", _classify(lambda m: m.protocol_0_pickle()), ["not a GeoEmbed model"]),
    ("classify", "empty file", _classify(lambda m: m.empty()), ["empty"]),
    ("classify", "truncated model", _classify(lambda m: m.truncated()), ["not a GeoEmbed model", "geoembed:train"]),
    ("classify", "a GeoTIFF as MODEL", _classify(lambda m: m.trained["knn"]["OUTPUT"]), ["not a GeoEmbed model"]),
    ("classify", "a folder as MODEL", _classify(lambda m: m.scratch), ["folder"]),
    ("classify", "member claiming a huge shape", _classify(lambda m: m.huge_member()), ["vectors", "shape"]),
    ("classify", "header claiming huge arrays", _classify(lambda m: m.huge_header()), ["GiB"]),
    ("classify", "object array that would write a file", _classify(lambda m: m.object_array()), ["threshold", "|O"]),
    ("classify", "header not JSON", _classify(lambda m: m.not_json()), ["not valid JSON"]),
    (
        "classify",
        "header of another format",
        _classify(lambda m: m.tampered(header=lambda h: h.update(format="sklearn-pickle"))),
        ["format"],
    ),
    (
        "classify",
        "format version 2",
        _classify(lambda m: m.tampered(header=lambda h: h.update(version=2))),
        ["version 2"],
    ),
    (
        "classify",
        "missing array",
        _classify(lambda m: m.tampered(arrays=lambda a: a.pop("threshold"))),
        ["missing", "threshold"],
    ),
    (
        "classify",
        "unexpected member",
        _classify(lambda m: m.with_member("run.py", b"import os\n")),
        ["unexpected", "run.py"],
    ),
    ("classify", "two hundred members", _classify(lambda m: m.many_members()), ["members"]),
    (
        "classify",
        "tree child outside its tree",
        _classify(lambda m: m.tampered(arrays=_tree(lambda left, right, starts: left.__setitem__(_inner(left), starts[1])))),
        ["tree"],
    ),
    (
        "classify",
        "tree loop (child points back to the root)",
        _classify(lambda m: m.tampered(arrays=_tree(lambda left, right, starts: right.__setitem__(_inner(left), 0)))),
        ["tree"],
    ),
    (
        "classify",
        "tree splits on band 64 of 64",
        _classify(lambda m: m.tampered(arrays=lambda a: a.update(feature=np.where(a["left"] >= 0, 64, 0)))),
        ["band"],
    ),
    (
        "classify",
        "coefficients not classes x bands",
        _classify(lambda m: m.tampered("logistic_regression", arrays=lambda a: a.update(coef=a["coef"][:, :60]))),
        ["coef", "shape"],
    ),
    (
        "classify",
        "NaN coefficients",
        _classify(lambda m: m.tampered("logistic_regression", arrays=lambda a: a.update(coef=a["coef"] * np.nan))),
        ["NaN"],
    ),
    (
        "classify",
        "kNN labels out of range",
        _classify(lambda m: m.tampered("knn", arrays=lambda a: a.update(labels=a["labels"] + 99))),
        ["labels"],
    ),
    (
        "classify",
        "more classes than class names",
        _classify(lambda m: m.tampered(header=lambda h: h.update(class_names=["a", "b"]))),
        ["classes"],
    ),
    ("classify", "model of 8 bands, INPUT of 64", _classify(lambda m: m.eight_band_model()), ["bands", "same product"]),
]


@pytest.mark.parametrize(("algorithm", "case", "build", "words"), HOSTILE_MODELS, ids=[c for _, c, _, _ in HOSTILE_MODELS])
def test_hostile_model_is_refused_and_never_runs(embedding, trained, tmp_path, algorithm, case, build, words):
    scratch, out = tmp_path / "scratch", tmp_path / "out"
    scratch.mkdir()
    out.mkdir()
    models = Models(trained, scratch)
    parameters = {key: str(value) if hasattr(value, "suffix") else value for key, value in build(models, embedding, out).items()}
    assert_refused(algorithm, parameters, words, out, case)
    assert not [marker.name for marker in models.markers if marker.exists()], f"{case}: something was unpickled"


def test_the_pickle_rows_would_really_write_their_marker(tmp_path):
    """Guard for the table: the pickles it uses do create their marker when unpickled."""
    import pickle

    marker = tmp_path / "proof.txt"
    pickle.loads(mf.pickle_that_writes(tmp_path / "p.pkl", marker).read_bytes())
    assert marker.exists()
    marker.unlink()
    pickle.loads(Models({}, tmp_path).protocol_0_pickle().read_bytes())
    assert (tmp_path / "pwned0.txt").exists()
