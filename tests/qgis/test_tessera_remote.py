"""Tessera over http(s) with its versions, through Processing: geoembed:load from a served mirror (read back through
QGIS's raster provider and compared with the same tiles loaded from the local folder), VERSION and DIMENSIONS,
geoembed:change refusing v1 against v2, and geoembed:catalog's Tessera coverage.

The test server speaks plain http on 127.0.0.1 (no TLS in the test servers); the client code is the same for https.
"""

import numpy as np
import pytest
from qgis.core import QgsRasterLayer, QgsVectorLayer

from tests.fixtures import tessera as fx
from tests.support.fault_server import FaultServer, Status

from .refusals import assert_refused

EXTENT = "5.986,5.993,44.997,45.004 [EPSG:4326]"  # xmin,xmax,ymin,ymax: inside grid_5.99_45.00, with water
BOTH_TILES = "5.986,6.003,44.997,45.003 [EPSG:4326]"


def _run(name, parameters):
    import processing

    return processing.run(f"geoembed:{name}", {k: str(v) if hasattr(v, "__fspath__") else v for k, v in parameters.items()})


def _read(path):
    """(bands, rows, cols) values, band names and GEOEMBED_* metadata, through QGIS's raster provider."""
    layer = QgsRasterLayer(str(path), "t", "gdal")
    assert layer.isValid(), path
    provider = layer.dataProvider()
    width, height = provider.xSize(), provider.ySize()
    bands = []
    for band in range(1, provider.bandCount() + 1):
        block = provider.block(band, provider.extent(), width, height)
        raw = np.frombuffer(bytes(block.data()), dtype=np.float32).reshape(height, width)
        bands.append(raw.copy())
    names = [provider.generateBandName(b) for b in range(1, provider.bandCount() + 1)]
    descriptions = [layer.bandName(b) for b in range(1, provider.bandCount() + 1)]
    return np.stack(bands), names, descriptions


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    root = tmp_path_factory.mktemp("tessera-mirror-qgis")
    fx.build_versions_mirror(root)
    return root


@pytest.fixture(autouse=True)
def _cache(monkeypatch, tmp_path):
    monkeypatch.setenv("GEOEMBED_CACHE_DIR", str(tmp_path / "cache"))


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_load_from_the_mirror_equals_the_local_folder(mirror, tmp_path, version):
    common = {"PRODUCT": "tessera", "EXTENT": EXTENT, "YEAR": 2024, "VERSION": version}
    with FaultServer(mirror) as server:
        remote = _run("load", {**common, "SOURCE": server.url, "OUTPUT": tmp_path / "remote.tif"})
    local = _run("load", {**common, "SOURCE": mirror, "OUTPUT": tmp_path / "local.tif"})
    remote_values, _, remote_names = _read(remote["OUTPUT"])
    local_values, _, local_names = _read(local["OUTPUT"])
    np.testing.assert_array_equal(remote_values, local_values)
    assert remote_values.shape[0] == 128 and (remote_values != -9999.0).any()
    prefix = "T" if version == "v1" else "Tv2_"
    assert all(f"{prefix}{i:03d}" in name for i, name in enumerate(remote_names)), remote_names[:3]
    assert remote["YEAR"] == 2024
    assert _metadata(remote["OUTPUT"]) == version


def _metadata(path):
    from osgeo import gdal

    return gdal.Open(path).GetMetadata().get("GEOEMBED_PRODUCT_VERSION")


def test_dimensions_16_equals_the_first_16_bands(mirror, tmp_path):
    common = {"PRODUCT": "tessera", "EXTENT": EXTENT, "YEAR": 2024, "VERSION": "v2"}
    with FaultServer(mirror) as server:
        full = _run("load", {**common, "SOURCE": server.url, "OUTPUT": tmp_path / "full.tif"})
        preview = _run("load", {**common, "SOURCE": server.url, "DIMENSIONS": 16, "OUTPUT": tmp_path / "d16.tif"})
    full_values, _, _ = _read(full["OUTPUT"])
    preview_values, _, names = _read(preview["OUTPUT"])
    assert preview_values.shape[0] == 16
    np.testing.assert_array_equal(preview_values, full_values[:16])
    assert "Tv2_015" in names[-1]


def test_version_and_dimension_refusals(mirror, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    common = {"PRODUCT": "tessera", "SOURCE": mirror, "EXTENT": EXTENT, "YEAR": 2024, "OUTPUT": out / "x.tif"}
    assert_refused("load", common, ["v1 and v2", "VERSION"], out, "mixed versions")
    assert_refused("load", {**common, "VERSION": "v1", "DIMENSIONS": 16}, ["Matryoshka"], out, "v1 prefix")
    with FaultServer(mirror) as server:
        server.add("/npy/v1/2024/grid_5.99_45.00/grid_5.99_45.00.npy", script=[Status(500)], methods=("GET",))
        remote = {**common, "SOURCE": server.url, "VERSION": "v1"}
        assert_refused("load", remote, ["HTTP 500"], out, "server error")


def test_change_refuses_v1_against_v2(mirror, tmp_path):
    common = {"PRODUCT": "tessera", "SOURCE": mirror, "EXTENT": EXTENT, "YEAR": 2024}
    first = _run("load", {**common, "VERSION": "v1", "OUTPUT": tmp_path / "v1.tif"})["OUTPUT"]
    second = _run("load", {**common, "VERSION": "v2", "OUTPUT": tmp_path / "v2.tif"})["OUTPUT"]
    out = tmp_path / "out"
    out.mkdir()
    parameters = {"INPUT": first, "INPUT_2": second, "OUTPUT": out / "d.tif"}
    assert_refused("change", parameters, ["tessera v1", "tessera v2", "VERSION"], out, "v1 vs v2")


@pytest.mark.parametrize("remote", [True, False])
def test_catalog_coverage_lists_the_mirror_tiles(mirror, tmp_path, remote):
    with FaultServer(mirror) as server:
        source = server.url if remote else str(mirror)
        result = _run(
            "catalog",
            {
                "EXTENT": BOTH_TILES,
                "TESSERA_SOURCE": source,
                "VERSION": "v2",
                "YEAR": 2023,
                "OUTPUT_COVERAGE": tmp_path / "c.gpkg",
            },
        )
    layer = QgsVectorLayer(result["OUTPUT_COVERAGE"], "coverage", "ogr")
    assert layer.isValid()
    rows = sorted((f["name"], f["year"], f["version"], f["grid_bytes"]) for f in layer.getFeatures())
    sizes = {name: (mirror / "npy" / "v2-2B-L~beta1" / "2023" / name / f"{name}.npy").stat().st_size for name, *_ in rows}
    assert rows == [(name, 2023, "v2", float(sizes[name])) for name in ("grid_5.99_45.00", "grid_6.00_45.00")]
    extent = next(iter(layer.getFeatures())).geometry().boundingBox()
    assert extent.width() == pytest.approx(0.1) and layer.crs().authid() == "EPSG:4326"
