"""CLUSTER=local through `qgis_process.bin`: geoembed:similarity, classify, load, resample and pca on two local Dask
worker processes (started from QGIS's embedded Python) give the files the run in QGIS gives, bit for bit, and leave
no pieces behind.

Ten qgis_process runs.
"""

import importlib.util
import os

import numpy as np
import pytest
from osgeo import gdal

from tests.e2e.helpers import json_of, leftovers
from tests.e2e.test_analysis_cli import run_args, write_points
from tests.support.four_tiles import build_four_tiles, lonlat_points

HAS_DASK = importlib.util.find_spec("distributed") is not None
if not HAS_DASK and os.environ.get("CI"):
    pytest.fail("dask.distributed is missing: install python3-distributed (dev.sh and tools/qgis_chroot.sh do)", False)
pytestmark = pytest.mark.skipif(not HAS_DASK, reason="dask.distributed is not installed (apt install python3-distributed)")


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    return str(build_four_tiles(tmp_path_factory.mktemp("four-tiles")))


@pytest.fixture(scope="module")
def model_file(region, tmp_path_factory):
    from geoembed.analysis import classify
    from geoembed.loaders.open import open_embeddings

    class Quiet:
        def info(self, message):
            pass

        warning = debug = info

    raster = open_embeddings(region, Quiet())
    try:
        block = raster.read(next(raster.grid.blocks(512)))
        band_names = raster.band_names
    finally:
        raster.close()
    features = [block.values[:, r : r + 20, c : c + 20].reshape(64, -1).T for r, c in [(50, 50), (200, 300), (400, 100)]]
    labels = np.concatenate([np.full(len(f), label) for label, f in enumerate(features)])
    estimator = classify.make_model("nearest_centroid").fit(np.concatenate(features), labels)
    model = classify.TrainedModel(estimator, ["water", "crops", "town"], band_names, "aef", "nearest_centroid")
    return model.save(str(tmp_path_factory.mktemp("model") / "model.npz"))


def same_raster(first, second):
    a, b = gdal.Open(str(first)), gdal.Open(str(second))
    return a.ReadRaster() == b.ReadRaster() and a.GetGeoTransform() == b.GetGeoTransform() and a.GetMetadata() == b.GetMetadata()


def test_similarity_on_a_local_cluster_equals_the_run_in_qgis(qgis_process, region, tmp_path):
    query = write_points(tmp_path / "query.geojson", [(point, {}) for point in lonlat_points(2)])
    out = tmp_path / "out"
    results = {}
    for cluster in ("", "local"):
        name = cluster or "qgis"
        completed = qgis_process(
            *run_args("similarity", INPUT=region, QUERY=query, K=5, OUTPUT=out / f"{name}.tif", CLUSTER=cluster, WORKERS=2)
        )
        results[name] = json_of(completed)["results"]
    assert same_raster(results["qgis"]["OUTPUT"], results["local"]["OUTPUT"])
    assert sorted(os.listdir(out)) == ["local.tif", "qgis.tif"]  # no scratch folder, no piece
    assert leftovers(tmp_path) == []


def test_classify_on_a_local_cluster_equals_the_run_in_qgis(qgis_process, region, model_file, tmp_path):
    out = tmp_path / "out"
    results = {}
    for cluster in ("", "local"):
        name = cluster or "qgis"
        completed = qgis_process(
            *run_args("classify", INPUT=region, MODEL=model_file, OUTPUT=out / f"{name}.tif", CLUSTER=cluster, WORKERS=2)
        )
        results[name] = json_of(completed)["results"]
    assert same_raster(results["qgis"]["OUTPUT"], results["local"]["OUTPUT"])
    assert not [name for name in os.listdir(out) if name.startswith(".")]


BLOCK_WISE = {  # algorithm: (its parameters besides INPUT/SOURCE and the outputs, its raster outputs)
    "load": ({"PRODUCT": "aef", "OUTPUT_TYPE": "int16"}, ("OUTPUT",)),
    "resample": ({"MODE": "aggregate", "RESOLUTION": 30}, ("OUTPUT",)),
    "pca": ({"SAMPLE_SIZE": 5000}, ("OUTPUT",)),
}


@pytest.mark.parametrize("algorithm", list(BLOCK_WISE))
def test_block_wise_algorithms_on_a_local_cluster_equal_the_run_in_qgis(qgis_process, region, tmp_path, algorithm):
    parameters, outputs = BLOCK_WISE[algorithm]
    source = {"SOURCE" if algorithm == "load" else "INPUT": region}
    out = tmp_path / "out"
    results = {}
    for cluster in ("", "local"):
        name = cluster or "qgis"
        named = {key: out / f"{name}-{key.lower()}.tif" for key in outputs}
        completed = qgis_process(*run_args(algorithm, **source, **parameters, **named, CLUSTER=cluster, WORKERS=2))
        results[name] = json_of(completed)["results"]
    for key in outputs:
        assert same_raster(results["qgis"][key], results["local"][key]), key
    assert not [name for name in os.listdir(out) if name.startswith(".")]  # no pieces folder
    assert leftovers(tmp_path) == []
