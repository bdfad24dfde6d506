"""A saved similarity query through `qgis_process.bin`: a run with QUERY and NEGATIVE saves OUTPUT_QUERY; a run with
QUERY_FILE only gives the same heatmap, bit for bit. A query of another product is refused in one line.

Four qgis_process runs.
"""

import json

import pytest
from osgeo import gdal

from tests.e2e.helpers import json_of, leftovers, output_of
from tests.e2e.test_analysis_cli import embedding_tile, run_args, write_points


@pytest.fixture(scope="module")
def tile(aef_mirror, aef_specs, tmp_path_factory):
    return embedding_tile(aef_mirror, aef_specs, tmp_path_factory.mktemp("e2e-query-embedding"))


@pytest.fixture(scope="module")
def saved(qgis_process, tile, tmp_path_factory):
    """A run with two examples and a counter-example that saves its query: (heatmap, query file)."""
    folder = tmp_path_factory.mktemp("e2e-query")
    centres = tile.safe_centres()
    query = write_points(folder / "query.geojson", [(p, {"id": i}) for i, p in enumerate([centres[2], centres[-4]])])
    negative = write_points(folder / "negative.geojson", [(centres[len(centres) // 2], {"id": 0})])
    output, query_file = folder / "heat.tif", folder / "solar.geoembed-query.json"
    completed = qgis_process(
        *run_args("similarity", INPUT=tile.path, QUERY=query, NEGATIVE=negative, K=0, OUTPUT=output, OUTPUT_QUERY=query_file)
    )
    document = json_of(completed)
    assert document["results"]["OUTPUT_QUERY"] == str(query_file)
    return output, query_file


def test_the_query_file_holds_vectors_product_year_and_places(saved, tile):
    _, query_file = saved
    document = json.loads(query_file.read_text())
    assert document["format"] == "geoembed-query" and document["version"] == 1
    assert document["product"] == "aef" and document["year"] == 2024 and document["dimensions"] == 64
    assert len(document["examples"]["vectors"]) == 2 and len(document["counter_examples"]["vectors"]) == 1
    centres = tile.safe_centres()
    for (lon, lat), expected in zip(document["examples"]["lonlat"], [centres[2], centres[-4]]):
        assert abs(lon - expected[0]) < 1e-9 and abs(lat - expected[1]) < 1e-9
    row, col = tile.pixel(*centres[2])
    assert document["examples"]["vectors"][0] == [float(v) for v in tile.values[:, row, col]]


def test_query_file_alone_reproduces_the_heatmap_bit_for_bit(qgis_process, saved, tile, tmp_path):
    heatmap, query_file = saved
    again = tmp_path / "again.tif"
    completed = qgis_process(*run_args("similarity", INPUT=tile.path, QUERY_FILE=query_file, K=0, OUTPUT=again))
    assert json_of(completed)["results"]["OUTPUT"] == str(again)
    first, second = gdal.Open(str(heatmap)), gdal.Open(str(again))
    assert first.ReadRaster() == second.ReadRaster()
    assert first.GetGeoTransform() == second.GetGeoTransform()


def test_a_query_of_other_bands_is_refused_in_one_line(qgis_process, saved, tile, tmp_path):
    _, query_file = saved
    document = json.loads(query_file.read_text())
    for part in ("examples", "counter_examples"):
        document[part]["vectors"] = [vector[:32] for vector in document[part]["vectors"]]
    document["band_names"], document["dimensions"], document["product"] = [f"B{i}" for i in range(32)], 32, "other"
    other = tmp_path / "other.geoembed-query.json"
    other.write_text(json.dumps(document))
    out = tmp_path / "out"
    completed = qgis_process(*run_args("similarity", INPUT=tile.path, QUERY_FILE=other, OUTPUT=out / "heat.tif"))
    text = output_of(completed)
    assert completed.returncode != 0, text
    assert [line for line in text.splitlines() if "QUERY_FILE" in line and "32 bands" in line and "64" in line], text
    assert "Traceback" not in text
    assert not out.exists() or list(out.iterdir()) == []
    assert leftovers(tmp_path) == []
