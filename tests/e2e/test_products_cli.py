"""Multi-product geoembed:load and geoembed:catalog through `qgis_process.bin`, as a user runs them (6 runs)."""

import re

import numpy as np
import pytest
from osgeo import gdal

from tests.e2e.helpers import json_of, leftovers, load_args, output_of, pixel_at
from tests.fixtures.all_products import build_all

PRODUCT_IDS = ["aef", "tessera", "clay", "earth-index", "major-tom", "copernicus-embed", "presto", "esd", "generic"]
TESSERA_EXTENT = "5.986,6.004,44.996,45.004 [EPSG:4326]"  # across grid_5.99_45.00 (31N) and grid_6.00_45.00 (32N)
CATALOG_EXTENT = "5.976,6.03,44.99,45.02 [EPSG:4326]"


@pytest.fixture(scope="session")
def cli_products(tmp_path_factory):
    """Tessera, Clay and Presto fixtures, built once per session: {product id: build() dict}."""
    return build_all(tmp_path_factory.mktemp("cli-products"), ["tessera", "clay", "presto"])


def _sources(info):
    return {
        "tessera": (info["tessera"]["download_dir"], {"EXTENT": TESSERA_EXTENT}),
        "clay": (info["clay"]["files"]["v0"]["path"], {}),
        "presto": (info["presto"]["path"], {}),
    }


# product id: (bands, a valid lon/lat inside the output, the name the log gives the product)
AUTO_CASES = {
    "tessera": (128, (5.99061, 44.99861), "Tessera"),
    "clay": (768, (7.2216, 44.6099), "Clay"),  # chip 242, also present at a later date (the later one wins)
    "presto": (128, (-0.14502, 11.13631), "Presto"),
}


@pytest.fixture(scope="module")
def auto_runs(qgis_process, cli_products, tmp_path_factory):
    """{product id: (CompletedProcess, output path)} of one PRODUCT=auto run per product."""
    runs = {}
    for product_id, (source, extra) in _sources(cli_products).items():
        output = tmp_path_factory.mktemp(f"auto-{product_id}") / "out.tif"
        runs[product_id] = (qgis_process(*load_args(PRODUCT="auto", SOURCE=source, OUTPUT=output, **extra)), output)
    return runs


def _log(completed, document):
    return "\n".join(document.get("log", {}).get("info", [])) or output_of(completed)


@pytest.mark.parametrize("product_id", list(AUTO_CASES))
def test_auto_detects_the_product_and_writes_the_output(auto_runs, product_id):
    completed, output = auto_runs[product_id]
    document = json_of(completed)
    bands, _, label = AUTO_CASES[product_id]
    assert document["results"]["PRODUCT"] == product_id
    assert document["results"]["OUTPUT"] == str(output)
    log = _log(completed, document)
    assert "PRODUCT=auto" in log and f"({product_id})" in log and label in log, log
    assert "Traceback" not in output_of(completed)
    dataset = gdal.Open(str(output))
    assert dataset is not None, f"{output} was not written"
    assert dataset.RasterCount == bands
    assert {gdal.GetDataTypeName(dataset.GetRasterBand(b + 1).DataType) for b in range(bands)} == {"Float32"}


@pytest.mark.parametrize("product_id", list(AUTO_CASES))
def test_auto_output_holds_the_fixture_values(auto_runs, cli_products, product_id):
    completed, output = auto_runs[product_id]
    assert completed.returncode == 0, output_of(completed)
    _, probe, _ = AUTO_CASES[product_id]
    lon, lat = pixel_centre(output, *probe)  # the output pixel holds the value found at its centre
    info = cli_products[product_id]
    expected = info["expected_at"]("v0", lon, lat) if product_id == "clay" else info["expected_at"](lon, lat)
    assert expected is not None, "test design: the fixture has no value there"
    values, _ = pixel_at(output, lon, lat)
    np.testing.assert_allclose(values, np.asarray(expected, dtype=np.float64), rtol=0, atol=1e-6)


def pixel_centre(path, lon, lat):
    """lon/lat of the centre of the output pixel containing lon/lat."""
    from pyproj import Transformer

    dataset = gdal.Open(str(path))
    x0, dx, _, y0, _, dy = dataset.GetGeoTransform()
    crs = dataset.GetSpatialRef().ExportToWkt()
    x, y = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lon, lat)
    col, row = np.floor((x - x0) / dx), np.floor((y - y0) / dy)
    return Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(x0 + (col + 0.5) * dx, y0 + (row + 0.5) * dy)


def _error_lines(text, words):
    return [line for line in text.splitlines() if all(word.lower() in line.lower() for word in words)]


@pytest.fixture(scope="module")
def presto_on_clay(qgis_process, cli_products, tmp_path_factory):
    """PRODUCT=presto with a Clay .gpq as SOURCE: (CompletedProcess, the .gpq, the OUTPUT asked for)."""
    clay = cli_products["clay"]["files"]["v0"]["path"]
    output = tmp_path_factory.mktemp("presto-on-clay") / "out" / "out.tif"
    return qgis_process(*load_args(PRODUCT="presto", SOURCE=clay, OUTPUT=output)), clay, output


def test_presto_on_a_clay_file_fails_cleanly(presto_on_clay):
    completed, clay, output = presto_on_clay
    text = output_of(completed)
    assert completed.returncode != 0, text
    assert "Traceback" not in text, text
    assert "Unexpected error" not in text, text
    lines = _error_lines(text, [clay.name])
    assert lines, f"no line names {clay.name}:\n{text}"
    assert not output.exists()
    assert leftovers(output.parent) == []


def test_presto_on_a_clay_file_error_line_is_tidy(presto_on_clay):
    """The one line ends with a single full stop (GDAL's reason already ends with one)."""
    completed, clay, _ = presto_on_clay
    lines = _error_lines(output_of(completed), [clay.name])
    assert lines, output_of(completed)
    assert not any(line.rstrip().endswith("..") for line in lines), lines[0]


def test_unknown_product_lists_every_valid_id(qgis_process, cli_products, tmp_path):
    output = tmp_path / "out.tif"
    completed = qgis_process(*load_args(PRODUCT="nope", SOURCE=cli_products["presto"]["path"], OUTPUT=output))
    text = output_of(completed)
    assert completed.returncode != 0, text
    assert "Traceback" not in text, text
    lines = _error_lines(text, ["nope", "valid PRODUCT values"])
    assert len(lines) >= 1, text
    listed = re.split(r"[,\s]+", lines[0].split("valid PRODUCT values", 1)[1].strip(" :.'\""))
    listed = [word.strip(".':\"") for word in listed if word.strip(".':\"")]
    missing = [product_id for product_id in ["auto", *PRODUCT_IDS] if product_id not in listed]
    assert not missing, f"{missing} not listed in: {lines[0]}"
    assert not output.exists()


def test_catalog_writes_the_table_and_the_html(qgis_process, tmp_path):
    table, page = tmp_path / "catalog.csv", tmp_path / "catalog.html"
    completed = qgis_process(
        "--json", "run", "geoembed:catalog", "--", f"EXTENT={CATALOG_EXTENT}", f"OUTPUT={table}", f"OUTPUT_HTML={page}"
    )
    document = json_of(completed)
    assert document["results"]["OUTPUT_HTML"] == str(page)
    assert page.is_file() and table.is_file()
    text = page.read_text(encoding="utf-8")
    for product_id in PRODUCT_IDS:
        assert f"<td>{product_id}</td>" in text, product_id
    assert "$0.023" in text and "$0.09" in text
    rows = table.read_text(encoding="utf-8").splitlines()
    assert len(rows) == 1 + len(PRODUCT_IDS), rows
    assert "Traceback" not in output_of(completed)
