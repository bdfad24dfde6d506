"""CLUSTER through Processing for geoembed:change and geoembed:trajectory: with CLUSTER=local (2 worker processes) they
write what the run in QGIS writes, bit for bit (every raster output and the per-pair table), and give the same
threshold (Otsu's, from the pieces' merged histograms) and areas; no scratch folder is left behind."""

import importlib.util
import os
import sys

import pytest
from osgeo import gdal
from qgis.core import QgsProcessingException, QgsVectorLayer

from tests.support.year_rasters import YEARS, build_years

from .helpers import error_message

HAS_DASK = importlib.util.find_spec("distributed") is not None
if not HAS_DASK and os.environ.get("CI"):
    pytest.fail("dask.distributed is missing: install python3-distributed (dev.sh and tools/qgis_chroot.sh do)", False)
needs_dask = pytest.mark.skipif(not HAS_DASK, reason="dask.distributed is not installed (apt install python3-distributed)")
NUMBERS = ("USED_THRESHOLD", "CHANGED_PIXELS", "VALID_PIXELS", "CHANGED_AREA", "CHANGED_FRACTION")
TRAJECTORY_RASTERS = ("OUTPUT", "OUTPUT_BREAK_YEAR", "OUTPUT_BREAK_SIZE", "OUTPUT_ANOMALY")


def run(name, parameters):
    import processing

    return processing.run(f"geoembed:{name}", parameters)


@pytest.fixture(scope="module")
def years(tmp_path_factory):
    return build_years(tmp_path_factory.mktemp("years"))


def raster_facts(path):
    dataset = gdal.Open(str(path))
    bands = [dataset.GetRasterBand(i + 1) for i in range(dataset.RasterCount)]
    described = [(b.DataType, b.GetNoDataValue(), b.GetDescription(), b.GetBlockSize()) for b in bands]
    return dataset.ReadAsArray().tobytes(), dataset.GetGeoTransform(), dataset.GetProjection(), dataset.GetMetadata(), described


def table_rows(path):
    layer = QgsVectorLayer(str(path), "table", "ogr")
    return [feature.attributes() for feature in layer.getFeatures()]


def hidden_files(folder):
    return sorted(name for name in os.listdir(folder) if name.startswith("."))


@needs_dask
@pytest.mark.parametrize("later", [2022, 2024], ids=["same-grid", "half-pixel-shifted-grid"])
def test_change_with_cluster_local_equals_the_run_in_qgis(tmp_path, years, later):
    results = {}
    for cluster in ("", "local"):
        name = cluster or "qgis"
        results[name] = run(
            "change",
            {
                "INPUT": years[2021],
                "INPUT_2": years[later],
                "OUTPUT": str(tmp_path / f"{name}-distance.tif"),
                "OUTPUT_MASK": str(tmp_path / f"{name}-mask.tif"),
                "CLUSTER": cluster,
                "WORKERS": 2,
            },
        )
    for key in ("OUTPUT", "OUTPUT_MASK"):
        assert raster_facts(results["local"][key]) == raster_facts(results["qgis"][key])
    for key in NUMBERS:
        assert results["local"][key] == results["qgis"][key], key
    assert 0 < results["qgis"]["CHANGED_PIXELS"] < results["qgis"]["VALID_PIXELS"]
    assert os.path.exists(str(tmp_path / "local-mask.qml"))  # the mask's style, as in QGIS
    assert hidden_files(tmp_path) == []  # no scratch folder, no piece


@needs_dask
def test_trajectory_with_cluster_local_equals_the_run_in_qgis(tmp_path, years):
    results = {}
    for cluster in ("", "local"):
        name = cluster or "qgis"
        outputs = {key: str(tmp_path / f"{name}-{key.lower()}.tif") for key in TRAJECTORY_RASTERS}
        results[name] = run(
            "trajectory",
            {
                "INPUT": [years[year] for year in reversed(YEARS)],  # put in year order by the algorithm
                **outputs,
                "OUTPUT_TABLE": str(tmp_path / f"{name}-table.csv"),
                "CLUSTER": cluster,
                "WORKERS": 2,
            },
        )
    for key in TRAJECTORY_RASTERS:
        assert raster_facts(results["local"][key]) == raster_facts(results["qgis"][key]), key
    rows = table_rows(results["qgis"]["OUTPUT_TABLE"])
    assert len(rows) == len(YEARS) - 1 and table_rows(results["local"]["OUTPUT_TABLE"]) == rows
    for key in (*NUMBERS, "YEARS"):
        assert results["local"][key] == results["qgis"][key], key
    assert results["qgis"]["YEARS"] == ",".join(map(str, YEARS))
    assert hidden_files(tmp_path) == []


@pytest.mark.parametrize("name", ["change", "trajectory"])
def test_without_dask_cluster_says_how_to_install(tmp_path, years, monkeypatch, name):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed raises ImportError
    inputs = {"INPUT": years[2021], "INPUT_2": years[2022]} if name == "change" else {"INPUT": list(years.values())}
    with pytest.raises(QgsProcessingException) as error:
        run(name, {**inputs, "OUTPUT": str(tmp_path / "out.tif"), "CLUSTER": "local"})
    message = error_message(error.value)
    assert "\n" not in message.strip() and "apt install python3-distributed" in message, message
    assert os.listdir(tmp_path) == []
