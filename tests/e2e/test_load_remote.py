"""geoembed:load over HTTP: an index and a tile served by a local range-honouring server.

Tiles must be read with HTTP range requests (never downloaded whole); the index is downloaded once
and then served from GEOEMBED_CACHE_DIR (fresh for 24 h).
"""

import numpy as np
import pytest

from tests.e2e.helpers import json_of, load_args, output_of, pixel_at
from tests.fixtures.aef import expected_values, patch_centre
from tests.support.range_server import RangeServer

# A ~300 m box east of 6°E, well inside the 2024 32N tile only.
EXTENT = "6.006,6.0098,45.0,45.0027 [EPSG:4326]"
POINT = patch_centre(6.008, 45.0013)
INDEX_PATH = "/v1/annual/aef_index.parquet"


def _snapshot(server):
    return list(server.requests), dict(server.bytes_by_path)


@pytest.fixture(scope="module")
def remote(qgis_process, aef_mirror, aef_specs, tmp_path_factory):
    """Three runs against one server: the mirror root twice (same cache), then one tile URL."""
    out = tmp_path_factory.mktemp("remote-run")
    cache = tmp_path_factory.mktemp("remote-cache")
    tile = next(spec for spec in aef_specs if spec.year == 2024 and spec.zone == "32N")
    runs = {}
    with RangeServer(aef_mirror) as server:
        for name, source in (
            ("index", server.url),
            ("index-again", server.url + "/"),
            ("tile", f"{server.url}/v1/annual/{tile.relative_path}"),
        ):
            server.reset()
            completed = qgis_process(
                *load_args(SOURCE=source, YEAR=2024, EXTENT=EXTENT, OUTPUT=out / f"{name}.tif"),
                env_extra={"GEOEMBED_CACHE_DIR": cache},
            )
            runs[name] = (completed, out / f"{name}.tif", *_snapshot(server))
    return runs


def _tile_sizes(aef_mirror, bytes_by_path):
    return {path: (aef_mirror / path.lstrip("/")).stat().st_size for path in bytes_by_path if path.endswith(".tiff")}


@pytest.mark.parametrize("name", ["index", "index-again", "tile"])
def test_remote_run_writes_the_right_values(remote, name):
    completed, output, _, _ = remote[name]
    document = json_of(completed)
    assert document["results"]["OUTPUT"] == str(output)
    assert document["results"]["CRS"] == "EPSG:32632"  # UTM zone of the extent's centre
    assert "Traceback" not in output_of(completed)
    values, epsg = pixel_at(output, *POINT)
    assert epsg == 32632
    np.testing.assert_allclose(values, expected_values(*POINT, 2024).astype(np.float64), rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["index", "tile"])
def test_tiles_are_read_with_ranges_never_whole(remote, aef_mirror, name):
    completed, _, requests, bytes_by_path = remote[name]
    assert completed.returncode == 0, output_of(completed)
    sizes = _tile_sizes(aef_mirror, bytes_by_path)
    assert sizes, f"no tile bytes fetched; requests: {requests}"
    fetched = sum(bytes_by_path[path] for path in sizes)
    assert fetched < 0.5 * sum(sizes.values()), f"fetched {fetched} of {sum(sizes.values())} tile bytes: {bytes_by_path}"
    tile_gets = [(path, header) for method, path, header in requests if method == "GET" and path.endswith(".tiff")]
    assert tile_gets, requests
    unranged = [path for path, header in tile_gets if not (header or "").startswith("bytes=")]
    assert not unranged, f"GET of a tile without a Range header: {unranged}"


def test_index_is_downloaded_once_then_cached(remote, aef_mirror):
    first = remote["index"]
    index_size = (aef_mirror / INDEX_PATH.lstrip("/")).stat().st_size
    assert first[3].get(INDEX_PATH) == index_size, f"first run should fetch the index: {first[2]}"
    again_completed, _, again_requests, again_bytes = remote["index-again"]
    assert again_completed.returncode == 0, output_of(again_completed)
    index_gets = [(method, header) for method, path, header in again_requests if path == INDEX_PATH and method == "GET"]
    assert not index_gets, f"second run fetched the cached index again: {index_gets}"
    assert again_bytes.get(INDEX_PATH, 0) == 0
