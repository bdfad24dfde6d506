"""CLUSTER through Processing: geoembed:similarity and geoembed:classify with CLUSTER=local (2 worker processes) write
what the run in QGIS writes, bit for bit; a scheduler that cannot be reached, or a CLUSTER that names none, is one
line and leaves nothing behind."""

import importlib.util
import os
import sys
import time

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsFeature, QgsGeometry, QgsPointXY, QgsProcessingException, QgsVectorLayer

from geoembed.analysis import classify
from geoembed.loaders.open import open_embeddings
from tests.support.four_tiles import build_four_tiles, lonlat_points

from .helpers import error_message

HAS_DASK = importlib.util.find_spec("distributed") is not None
if not HAS_DASK and os.environ.get("CI"):
    pytest.fail("dask.distributed is missing: install python3-distributed (dev.sh and tools/qgis_chroot.sh do)", False)
needs_dask = pytest.mark.skipif(not HAS_DASK, reason="dask.distributed is not installed (apt install python3-distributed)")


def run(name, parameters):
    import processing

    return processing.run(f"geoembed:{name}", parameters)


class QuietLog:
    def info(self, message):
        pass

    warning = debug = info


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    return str(build_four_tiles(tmp_path_factory.mktemp("four-tiles")))


@pytest.fixture(scope="module")
def points():
    layer = QgsVectorLayer("Point?crs=EPSG:4326", "examples", "memory")
    features = []
    for lon, lat in lonlat_points(2):
        feature = QgsFeature(layer.fields())
        feature.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(lon, lat)))
        features.append(feature)
    assert layer.dataProvider().addFeatures(features)[0]
    return layer


@pytest.fixture(scope="module")
def model_file(region, tmp_path_factory):
    """A logistic-regression model on pixels of three places of the region, saved as geoembed:train saves it."""
    raster = open_embeddings(region, QuietLog())
    try:
        block = raster.read(next(raster.grid.blocks(512)))
        band_names = raster.band_names
    finally:
        raster.close()
    features, labels = [], []
    for label, (row, col) in enumerate([(50, 50), (200, 300), (400, 100)]):
        patch = block.values[:, row : row + 20, col : col + 20].reshape(64, -1).T
        features.append(patch)
        labels.append(np.full(len(patch), label))
    estimator = classify.make_model("logistic_regression").fit(np.concatenate(features), np.concatenate(labels))
    model = classify.TrainedModel(estimator, ["water", "crops", "town"], band_names, "aef", "logistic_regression")
    return model.save(str(tmp_path_factory.mktemp("model") / "model.npz"))


def raster_bytes(path):
    dataset = gdal.Open(str(path))
    return dataset.ReadAsArray().tobytes(), dataset.GetGeoTransform(), dataset.GetMetadata()


@needs_dask
def test_similarity_with_cluster_local_equals_the_run_in_qgis(tmp_path, region, points):
    outputs = {}
    for cluster in ("", "local"):
        name = cluster or "qgis"
        result = run(
            "similarity",
            {
                "INPUT": region,
                "QUERY": points,
                "K": 7,
                "OUTPUT": str(tmp_path / f"{name}.tif"),
                "OUTPUT_MATCHES": str(tmp_path / f"{name}-matches.geojson"),
                "CLUSTER": cluster,
                "WORKERS": 2,
            },
        )
        outputs[name] = result
    assert raster_bytes(outputs["local"]["OUTPUT"]) == raster_bytes(outputs["qgis"]["OUTPUT"])
    matches = {name: QgsVectorLayer(result["OUTPUT_MATCHES"], name, "ogr") for name, result in outputs.items()}
    rows = {name: [(f["rank"], f["score"], f.geometry().asWkt()) for f in layer.getFeatures()] for name, layer in matches.items()}
    assert len(rows["qgis"]) == 7 and rows["local"] == rows["qgis"]
    assert sorted(n for n in os.listdir(tmp_path) if n.startswith(".")) == []  # no scratch folder left


@needs_dask
def test_classify_with_cluster_local_equals_the_run_in_qgis(tmp_path, region, model_file):
    outputs = {}
    for cluster in ("", "local"):
        name = cluster or "qgis"
        outputs[name] = run(
            "classify",
            {
                "INPUT": region,
                "MODEL": model_file,
                "OUTPUT": str(tmp_path / f"{name}-classes.tif"),
                "OUTPUT_CONFIDENCE": str(tmp_path / f"{name}-confidence.tif"),
                "CLUSTER": cluster,
                "WORKERS": 2,
            },
        )
    for key in ("OUTPUT", "OUTPUT_CONFIDENCE"):
        assert raster_bytes(outputs["local"][key]) == raster_bytes(outputs["qgis"][key])
    assert len(np.unique(gdal.Open(outputs["local"]["OUTPUT"]).ReadAsArray())) >= 3
    assert sorted(n for n in os.listdir(tmp_path) if n.startswith(".")) == []


@needs_dask
@pytest.mark.parametrize(
    ("cluster", "words"),
    [("tcp://127.0.0.1:9", ["tcp://127.0.0.1:9", "CLUSTER"]), ("my laptop", ["CLUSTER", "tcp://host:8786"])],
    ids=["unreachable", "no-address"],
)
def test_a_bad_cluster_is_one_line_and_writes_nothing(tmp_path, region, points, cluster, words):
    started = time.monotonic()
    with pytest.raises(QgsProcessingException) as error:
        run("similarity", {"INPUT": region, "QUERY": points, "OUTPUT": str(tmp_path / "out.tif"), "CLUSTER": cluster})
    message = error_message(error.value)
    assert "\n" not in message.strip() and all(word in message for word in words), message
    assert time.monotonic() - started < 60  # dask's own connect timeout would be 30 s and more; ours is 5 s
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("name", ["similarity", "classify"])
def test_without_dask_cluster_says_how_to_install(tmp_path, region, points, model_file, monkeypatch, name):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed raises ImportError
    inputs = {"QUERY": points} if name == "similarity" else {"MODEL": model_file}
    with pytest.raises(QgsProcessingException) as error:
        run(name, {"INPUT": region, **inputs, "OUTPUT": str(tmp_path / "out.tif"), "CLUSTER": "local"})
    message = error_message(error.value)
    assert "\n" not in message.strip() and "apt install python3-distributed" in message, message
    assert os.listdir(tmp_path) == []
