"""CLUSTER through Processing for geoembed:resample and geoembed:pca: with CLUSTER=local (2 worker processes) they
write what the run in QGIS writes, bit for bit (pixels, nodata, metadata; pca: the same saved projection), and leave
no scratch folder; without dask, CLUSTER says how to install it."""

import os
import sys
from pathlib import Path

import pytest
from qgis.core import QgsProcessingException

from tests.support.four_tiles import build_four_tiles

from .helpers import error_message
from .test_cluster_param import needs_dask, raster_bytes, run


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    return str(build_four_tiles(tmp_path_factory.mktemp("four-tiles")))


def both_ways(tmp_path, name, parameters, outputs=("OUTPUT",)):
    """{"qgis": results, "local": results} of the algorithm run in QGIS and on 2 local workers."""
    results = {}
    for cluster in ("", "local"):
        label = cluster or "qgis"
        named = {key: str(tmp_path / f"{label}-{key.lower()}{'.json' if key == 'OUTPUT_MODEL' else '.tif'}") for key in outputs}
        results[label] = run(name, {**parameters, **named, "CLUSTER": cluster, "WORKERS": 2})
    assert sorted(n for n in os.listdir(tmp_path) if n.startswith(".")) == []  # no scratch folder left
    return results


RESAMPLE_CASES = {
    "aggregate-aligned": {"RESOLUTION": 30},  # MODE=auto: aggregate, whole groups of 3 x 3 pixels over 4 tiles
    "aggregate-other-crs": {"MODE": "aggregate", "RESOLUTION": 0.0003, "CRS": "EPSG:4326"},
    "nearest": {"MODE": "nearest", "RESOLUTION": 20},
}


@needs_dask
@pytest.mark.parametrize("case", list(RESAMPLE_CASES))
def test_resample_with_cluster_local_equals_the_run_in_qgis(tmp_path, region, case):
    results = both_ways(tmp_path, "resample", {"INPUT": region, **RESAMPLE_CASES[case]})
    local, qgis = raster_bytes(results["local"]["OUTPUT"]), raster_bytes(results["qgis"]["OUTPUT"])
    assert local == qgis
    assert qgis[2]["GEOEMBED_RESAMPLING"].startswith("nearest" if case == "nearest" else "aggregate")


@needs_dask
def test_pca_with_cluster_local_equals_the_run_in_qgis(tmp_path, region):
    results = both_ways(tmp_path, "pca", {"INPUT": region, "SAMPLE_SIZE": 5000}, ("OUTPUT", "OUTPUT_MODEL"))
    assert raster_bytes(results["local"]["OUTPUT"]) == raster_bytes(results["qgis"]["OUTPUT"])
    models = [Path(results[label]["OUTPUT_MODEL"]).read_text(encoding="utf-8") for label in ("local", "qgis")]
    assert models[0] == models[1]  # fitted in QGIS both times: the same projection
    reused = both_ways(tmp_path / "reused", "pca", {"INPUT": region, "MODEL_IN": results["qgis"]["OUTPUT_MODEL"]})
    assert raster_bytes(reused["local"]["OUTPUT"]) == raster_bytes(reused["qgis"]["OUTPUT"])


@pytest.mark.parametrize("name", ["resample", "pca"])
def test_without_dask_cluster_says_how_to_install(tmp_path, region, monkeypatch, name):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed raises ImportError
    extra = {"RESOLUTION": 30} if name == "resample" else {}
    with pytest.raises(QgsProcessingException) as error:
        run(name, {"INPUT": region, **extra, "OUTPUT": str(tmp_path / "out.tif"), "CLUSTER": "local"})
    message = error_message(error.value)
    assert "\n" not in message.strip() and "apt install python3-distributed" in message, message
    assert os.listdir(tmp_path) == []
