"""geoembed:load with CLUSTER=local (2 worker processes) through Processing: the same files, bit for bit and metadata
for metadata, as the run in QGIS - one year (Int16 with OVERVIEWS) and YEARS; without dask, one line and nothing
written."""

import importlib.util
import os
import sys

import pytest
from osgeo import gdal
from qgis.core import QgsProcessingException

from tests.support.four_tiles import build_four_tiles

from .helpers import error_message

HAS_DASK = importlib.util.find_spec("distributed") is not None
if not HAS_DASK and os.environ.get("CI"):
    pytest.fail("dask.distributed is missing: install python3-distributed (dev.sh and tools/qgis_chroot.sh do)", False)
needs_dask = pytest.mark.skipif(not HAS_DASK, reason="dask.distributed is not installed (apt install python3-distributed)")
INDEX_EXTENT = "5.976,6.03,44.99,45.02 [EPSG:4326]"  # across 6°E: the fixture mirror's 2023 and 2024 tiles


def run(parameters):
    import processing

    return processing.run("geoembed:load", parameters)


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    return str(build_four_tiles(tmp_path_factory.mktemp("four-tiles")))


def file_facts(path):
    """Pixels and what QGIS and GDAL read of a GeoTIFF: grid, CRS, metadata, bands (type, nodata, name, scale),
    overviews."""
    dataset = gdal.Open(str(path))
    bands = [dataset.GetRasterBand(i + 1) for i in range(dataset.RasterCount)]
    return (
        dataset.ReadAsArray().tobytes(),
        dataset.GetGeoTransform(),
        dataset.GetProjection(),
        dataset.GetMetadata(),
        [(b.DataType, b.GetNoDataValue(), b.GetDescription(), b.GetScale(), b.GetOffset()) for b in bands],
        [[b.GetOverview(i).ReadAsArray().tobytes() for i in range(b.GetOverviewCount())] for b in bands[:2]],
    )


def hidden(folder):
    return sorted(name for name in os.listdir(folder) if name.startswith("."))


@needs_dask
def test_load_with_cluster_local_equals_the_run_in_qgis(tmp_path, region):
    results = {}
    for name, cluster in (("qgis", ""), ("local", "local")):
        results[name] = run(
            {
                "PRODUCT": "aef",
                "SOURCE": region,
                "OUTPUT_TYPE": "int16",
                "OVERVIEWS": True,
                "OUTPUT": str(tmp_path / f"{name}.tif"),
                "CLUSTER": cluster,
                "WORKERS": 2,
            }
        )
    assert file_facts(results["local"]["OUTPUT"]) == file_facts(results["qgis"]["OUTPUT"])
    assert file_facts(results["local"]["OUTPUT"])[-1][0]  # the overviews are there
    for key in ("PRODUCT", "YEAR", "CRS"):
        assert results["local"][key] == results["qgis"][key]
    assert hidden(tmp_path) == []  # no scratch folder, no piece
    assert gdal.Open(results["local"]["OUTPUT"]).GetRasterBand(1).DataType == gdal.GDT_Int16


@needs_dask
def test_years_with_cluster_local_equal_the_run_in_qgis(tmp_path, index_file):
    results = {}
    for name, cluster in (("qgis", ""), ("local", "local")):
        folder = tmp_path / name
        results[name] = run(
            {
                "SOURCE": str(index_file),
                "EXTENT": INDEX_EXTENT,
                "YEARS": "2023-2024",
                "OUTPUT": str(folder / "aef.tif"),
                "CLUSTER": cluster,
                "WORKERS": 2,
            }
        )
    assert results["local"]["YEARS_LOADED"] == results["qgis"]["YEARS_LOADED"] == "2023,2024"
    for here, there in zip(results["qgis"]["OUTPUT_YEARS"], results["local"]["OUTPUT_YEARS"]):
        assert os.path.basename(here) == os.path.basename(there)
        assert file_facts(there) == file_facts(here)
    assert sorted(os.listdir(tmp_path / "local")) == ["aef_2023.tif", "aef_2024.tif"]


def test_without_dask_cluster_says_how_to_install(tmp_path, region, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed raises ImportError
    with pytest.raises(QgsProcessingException) as error:
        run({"PRODUCT": "aef", "SOURCE": region, "OUTPUT": str(tmp_path / "out.tif"), "CLUSTER": "local"})
    message = error_message(error.value)
    assert "\n" not in message.strip() and "apt install python3-distributed" in message, message
    assert os.listdir(tmp_path) == []
