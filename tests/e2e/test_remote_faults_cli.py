"""geoembed:load through qgis_process.bin against the fault-injecting server.

A flaky server (HTTP 500, then fine) is retried and the load succeeds; a server that ignores Range for a
big tile is refused in one line, with no traceback and no output; two runs started together on one
cache fetch the index once and both succeed.
"""

import os
import subprocess

import numpy as np

from tests.e2e.conftest import QGIS_PROCESS, TIMEOUT_S
from tests.e2e.helpers import json_of, leftovers, load_args, output_of, pixel_at
from tests.fixtures.aef import expected_values, patch_centre
from tests.support.fault_server import FaultServer, IgnoreRange, Ok, Status, Trickle

EXTENT = "6.006,6.0098,45.0,45.0027 [EPSG:4326]"  # inside the 2024 32N tile only
POINT = patch_centre(6.008, 45.0013)
INDEX = "/v1/annual/aef_index.parquet"
MIB = 1 << 20


def _tile_path(aef_specs):
    spec = next(spec for spec in aef_specs if spec.year == 2024 and spec.zone == "32N")
    return "/v1/annual/" + spec.relative_path


def _check_values(output):
    values, epsg = pixel_at(output, *POINT)
    assert epsg == 32632
    np.testing.assert_allclose(values, expected_values(*POINT, 2024).astype(np.float64), rtol=0, atol=1e-6)


def _cache_names(cache):
    return sorted(os.listdir(cache / "files")) if (cache / "files").is_dir() else []


def test_a_flaky_server_is_retried_and_the_load_succeeds(qgis_process, aef_mirror, aef_specs, tmp_path):
    tile = _tile_path(aef_specs)
    cache, output = tmp_path / "cache", tmp_path / "out" / "flaky.tif"
    with FaultServer(aef_mirror) as server:
        server.add(INDEX, script=[Status(500), Ok()], methods=("GET",))
        # GeoEmbed's Range probe, then GDAL's first read of the tile: each gets one 500 first
        server.add(tile, script=[Status(500), Ok(), Status(500), Ok()], methods=("GET",))
        completed = qgis_process(
            *load_args(SOURCE=server.url, YEAR=2024, EXTENT=EXTENT, OUTPUT=output), env_extra={"GEOEMBED_CACHE_DIR": cache}
        )
        behaviours = [(request.path, request.behaviour) for request in server.requests if request.method == "GET"]
    assert json_of(completed)["results"]["OUTPUT"] == str(output)
    assert "Traceback" not in output_of(completed)
    _check_values(output)
    assert behaviours.count((INDEX, "Status")) == 1 and behaviours.count((INDEX, "Ok")) == 1, behaviours
    assert behaviours.count((tile, "Status")) == 2, behaviours
    assert len(_cache_names(cache)) == 2  # the index and its record, nothing else


def test_a_big_tile_on_a_server_that_ignores_range_is_refused_in_one_line(qgis_process, tmp_path):
    path = "/v1/annual/2024/32N/x0123456789abcdef-0000000000-0000000000.tiff"
    cache, out = tmp_path / "cache", tmp_path / "out"
    with FaultServer() as server:
        server.add(path, b"II*\0", size=300 * MIB, script=[IgnoreRange()])
        completed = qgis_process(
            *load_args(PRODUCT="aef", SOURCE=server.url + path, EXTENT=EXTENT, OUTPUT=out / "big.tif"),
            env_extra={"GEOEMBED_CACHE_DIR": cache},
        )
        sent = server.sent()
    text = output_of(completed)
    assert completed.returncode != 0, text
    lines = [line for line in text.splitlines() if "ignores HTTP Range requests" in line]
    # qgis_process prints the error in its log and again as the result: the same single line
    assert len(set(lines)) == 1 and server.url + path in lines[0] and "300 MiB" in lines[0], text
    assert "Traceback" not in text, text
    assert sent < 8 * MIB, f"the server sent {sent} bytes"
    assert not (out / "big.tif").exists() and leftovers(out) == []
    assert _cache_names(cache) == []


def test_two_runs_on_one_cache_fetch_the_index_once(qgis_env, aef_mirror, tmp_path):
    cache = tmp_path / "cache"
    outputs = [tmp_path / "out" / f"run{number}.tif" for number in range(2)]
    env = {**qgis_env, "GEOEMBED_CACHE_DIR": str(cache)}
    with FaultServer(aef_mirror) as server:
        size = (aef_mirror / INDEX.lstrip("/")).stat().st_size
        server.add(INDEX, script=[Trickle(chunk=max(1, size // 40), delay=0.1)], methods=("GET",))  # about 4 s
        runs = [
            subprocess.Popen(
                [QGIS_PROCESS, *load_args(SOURCE=server.url, YEAR=2024, EXTENT=EXTENT, OUTPUT=output)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for output in outputs
        ]
        results = []
        for run in runs:
            stdout, stderr = run.communicate(timeout=TIMEOUT_S)
            results.append(subprocess.CompletedProcess(run.args, run.returncode, stdout, stderr))
        index_gets = server.count(INDEX)
    for completed, output in zip(results, outputs):
        assert json_of(completed)["results"]["OUTPUT"] == str(output)
        assert "corrupt" not in output_of(completed)
        _check_values(output)
    assert index_gets == 1
    names = _cache_names(cache)
    assert len(names) == 2 and not [name for name in names if "partial" in name or name.endswith(".lock")], names
