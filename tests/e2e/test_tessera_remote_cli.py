"""Tessera over http(s) through qgis_process.bin, like a user: VERSION, DIMENSIONS, coverage and server faults.

The mirror (two versions, two years) is served by the fault-injecting test server on 127.0.0.1 over plain http, as the
AEF mirror tests do (the test servers have no TLS; the client code is the same for https).
"""

import numpy as np
import pytest

from tests.e2e.helpers import json_of, leftovers, load_args, output_of, pixel_at
from tests.fixtures import tessera as fx
from tests.fixtures.fields import patch_centre
from tests.support.fault_server import FaultServer, Status

EXTENT = "5.986,5.993,44.997,45.004 [EPSG:4326]"
POINT = patch_centre(5.991, 44.999)
TILE = "/npy/v2-2B-L~beta1/2024/grid_5.99_45.00/grid_5.99_45.00.npy"


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    root = tmp_path_factory.mktemp("tessera-mirror-cli")
    fx.build_versions_mirror(root)
    return root


def test_v2_and_its_16_dimension_preview_load_from_the_mirror(qgis_process, mirror, tmp_path):
    env = {"GEOEMBED_CACHE_DIR": tmp_path / "cache"}
    common = {"PRODUCT": "tessera", "EXTENT": EXTENT, "VERSION": "v2", "YEAR": 2024}
    with FaultServer(mirror) as server:
        full = qgis_process(*load_args(**common, SOURCE=server.url, OUTPUT=tmp_path / "full.tif"), env_extra=env)
        preview = qgis_process(*load_args(**common, SOURCE=server.url, DIMENSIONS=16, OUTPUT=tmp_path / "d16.tif"), env_extra=env)
    for completed in (full, preview):
        assert completed.returncode == 0, output_of(completed)
        assert "Traceback" not in output_of(completed)
    assert json_of(full)["results"]["YEAR"] == 2024
    values, _ = pixel_at(tmp_path / "full.tif", *POINT)
    np.testing.assert_allclose(values, fx.mirror_expected_at(*POINT, "v2", 2024), rtol=0, atol=1e-6)
    first, _ = pixel_at(tmp_path / "d16.tif", *POINT)
    np.testing.assert_array_equal(first, values[:16])


def test_mixed_versions_and_a_failing_server_are_refused_in_one_line(qgis_process, mirror, tmp_path):
    env = {"GEOEMBED_CACHE_DIR": tmp_path / "cache"}
    out = tmp_path / "out"
    out.mkdir()
    mixed = qgis_process(
        *load_args(PRODUCT="tessera", SOURCE=mirror, EXTENT=EXTENT, YEAR=2024, OUTPUT=out / "mixed.tif"), env_extra=env
    )
    with FaultServer(mirror) as server:
        server.add(TILE, script=[Status(500)], methods=("GET",))
        failing = qgis_process(
            *load_args(PRODUCT="tessera", SOURCE=server.url, VERSION="v2", EXTENT=EXTENT, YEAR=2024, OUTPUT=out / "f.tif"),
            env_extra={**env, "GEOEMBED_HTTP_TIMEOUT_S": 5},
        )
    for completed, words in ((mixed, ["v1 and v2", "VERSION"]), (failing, ["HTTP 500"])):
        assert completed.returncode != 0
        text = output_of(completed)
        assert "Traceback" not in text
        lines = [line for line in text.splitlines() if all(word in line for word in words)]
        assert len(lines) >= 1, text
    assert leftovers(out) == []


def test_catalog_coverage_of_the_mirror(qgis_process, mirror, tmp_path):
    from osgeo import ogr

    with FaultServer(mirror) as server:
        completed = qgis_process(
            "--json",
            "run",
            "geoembed:catalog",
            "--",
            "EXTENT=5.986,6.003,44.997,45.003 [EPSG:4326]",
            f"TESSERA_SOURCE={server.url}",
            "VERSION=v1",
            f"OUTPUT_COVERAGE={tmp_path / 'coverage.gpkg'}",
            env_extra={"GEOEMBED_CACHE_DIR": tmp_path / "cache"},
        )
    assert completed.returncode == 0, output_of(completed)
    assert "Tessera v1: 4 tile(s) meet the extent over all years" in output_of(completed)
    dataset = ogr.Open(str(tmp_path / "coverage.gpkg"))  # kept: its layer dies with it
    rows = sorted((f.GetField("name"), f.GetField("year"), f.GetField("version")) for f in dataset.GetLayer(0))
    names = ("grid_5.99_45.00", "grid_6.00_45.00")
    assert rows == sorted((name, year, "v1") for name in names for year in fx.MIRROR_YEARS)
