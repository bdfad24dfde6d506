"""geoembed:catalog through processing.run(): the table (CSV and memory layer), the HTML page and the costs.

Areas are checked against an independent computation: the exact area of a lon/lat rectangle on the WGS 84
ellipsoid (closed formula), cross-checked with pyproj.Geod on the densified rectangle.
"""

import csv
import html
import math

import numpy as np
import pytest
from pyproj import Geod, Transformer
from qgis.core import QgsProject, QgsVectorLayer
from qgis.PyQt.QtCore import QVariant

from geoembed.qgis_compat import FIELD_DOUBLE, FIELD_INT

ALGORITHM_ID = "geoembed:catalog"
PUBLISHED_IDS = ["aef", "tessera", "clay", "earth-index", "major-tom", "copernicus-embed", "presto", "esd"]
PRODUCT_IDS = [*PUBLISHED_IDS, "generic"]  # generic: any other embedding raster, its resolution and size from the file
COLUMNS = [  # documented in geoembed/providers/catalog.py (COLUMNS)
    "id",
    "name",
    "kind",
    "resolution_m",
    "dims",
    "dtype",
    "bytes_per_vector",
    "licence",
    "years",
    "public_location",
    "dequantization",
    "area_km2",
    "vectors",
    "storage_gb",
    "storage_usd_month",
    "egress_usd",
]
COST_COLUMNS = ["area_km2", "vectors", "storage_gb", "storage_usd_month", "egress_usd"]
DOUBLE_COLUMNS = ["resolution_m", *COST_COLUMNS]
BOX = (5.976, 44.99, 6.03, 45.02)  # lon/lat (west, south, east, north)
EXTENT = "{0},{2},{1},{3} [EPSG:4326]".format(*BOX)
STORAGE_USD_PER_GB_MONTH, EGRESS_USD_PER_GB = 0.023, 0.09
AEF_PIXEL_M2, AEF_BYTES = 10.0 * 10.0, 64

# WGS 84
A = 6378137.0
F = 1 / 298.257223563
E2 = F * (2 - F)
E = math.sqrt(E2)


def _zone(lat):
    """Area (m^2) on the WGS 84 ellipsoid between the equator and latitude lat, all round the globe."""
    s = math.sin(math.radians(lat))
    return 2 * math.pi * A * A * (1 - E2) * (s / (2 * (1 - E2 * s * s)) + math.log((1 + E * s) / (1 - E * s)) / (4 * E))


def box_area_m2(west, south, east, north):
    """Exact area of the lon/lat rectangle bounded by two meridians and two parallels."""
    return (east - west) / 360.0 * (_zone(north) - _zone(south))


def geod_area_m2(lons, lats):
    return abs(Geod(ellps="WGS84").polygon_area_perimeter(lons, lats)[0])


def densified_box(west, south, east, north, k=400):
    lons = np.concatenate([np.linspace(west, east, k), np.full(k, east), np.linspace(east, west, k), np.full(k, west)])
    lats = np.concatenate([np.full(k, south), np.linspace(south, north, k), np.full(k, north), np.linspace(north, south, k)])
    return lons, lats


def run(parameters):
    import processing

    return processing.run(ALGORITHM_ID, parameters)


def as_layer(value):
    layer = value if isinstance(value, QgsVectorLayer) else QgsProject.instance().mapLayer(value)
    assert isinstance(layer, QgsVectorLayer) and layer.isValid(), value
    return layer


def is_null(value):
    return value is None or (isinstance(value, QVariant) and value.isNull())


def rows_of(layer):
    return {f["id"]: {name: f[name] for name in COLUMNS} for f in layer.getFeatures()}


@pytest.fixture(scope="module")
def with_extent(tmp_path_factory):
    """One run with EXTENT: CSV table, HTML page, results."""
    out = tmp_path_factory.mktemp("catalog")
    results = run({"EXTENT": EXTENT, "OUTPUT": str(out / "catalog.csv"), "OUTPUT_HTML": str(out / "catalog.html")})
    return out, results


@pytest.fixture(scope="module")
def memory_with_extent():
    return as_layer(run({"EXTENT": EXTENT, "OUTPUT": "memory:"})["OUTPUT"])


@pytest.fixture(scope="module")
def without_extent(tmp_path_factory):
    out = tmp_path_factory.mktemp("catalog-no-extent")
    results = run({"OUTPUT": "memory:", "OUTPUT_HTML": str(out / "catalog.html")})
    return as_layer(results["OUTPUT"]), out / "catalog.html"


# --- the table ----------------------------------------------------------------------------------------------------


def test_csv_has_one_row_per_product_with_the_documented_columns(with_extent):
    out, results = with_extent
    assert results["OUTPUT"] == str(out / "catalog.csv")
    with open(out / "catalog.csv", newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == COLUMNS
        rows = list(reader)
    assert len(rows) == len(PRODUCT_IDS)
    assert sorted(row["id"] for row in rows) == sorted(PRODUCT_IDS)
    for row in rows:
        assert row["name"] and row["kind"] in ("pixel", "patch") and row["licence"], row
        if row["id"] == "generic":  # resolution, dims, size per vector and so costs come from each file
            assert all(row[name] == "" for name in ("resolution_m", "dims", *COST_COLUMNS)), row
            assert "from the file" in row["dtype"] and row["years"] == "from the file", row
            continue
        assert row["public_location"], row
        for name in ("resolution_m", "dims", "bytes_per_vector", *COST_COLUMNS):
            assert float(row[name]) > 0, (row["id"], name, row[name])
    layer = QgsVectorLayer(str(out / "catalog.csv"), "catalog", "ogr")
    assert layer.isValid() and layer.featureCount() == len(PRODUCT_IDS)


def test_memory_table_types(memory_with_extent):
    layer = memory_with_extent
    assert [f.name() for f in layer.fields()] == COLUMNS
    assert layer.featureCount() == len(PRODUCT_IDS)
    assert sorted(rows_of(layer)) == sorted(PRODUCT_IDS)
    for name in DOUBLE_COLUMNS:
        assert layer.fields().field(name).type() == FIELD_DOUBLE, name
    for name in ("dims", "bytes_per_vector"):
        assert layer.fields().field(name).type() == FIELD_INT, name


def test_aef_storage_equals_an_independent_computation(memory_with_extent):
    aef = rows_of(memory_with_extent)["aef"]
    area = box_area_m2(*BOX)
    assert geod_area_m2(*densified_box(*BOX)) == pytest.approx(area, rel=1e-7)  # the reference, cross-checked
    assert aef["area_km2"] == pytest.approx(area / 1e6, rel=1e-6)
    assert aef["vectors"] == pytest.approx(area / AEF_PIXEL_M2, rel=1e-6)
    gigabytes = area / AEF_PIXEL_M2 * AEF_BYTES / 1e9
    assert aef["storage_gb"] == pytest.approx(gigabytes, rel=1e-6)
    assert aef["storage_usd_month"] == pytest.approx(gigabytes * STORAGE_USD_PER_GB_MONTH, rel=1e-6)
    assert aef["egress_usd"] == pytest.approx(gigabytes * EGRESS_USD_PER_GB, rel=1e-6)


def test_every_product_costs_vectors_times_bytes_at_s3_prices(memory_with_extent):
    area = box_area_m2(*BOX)
    rows = rows_of(memory_with_extent)
    assert all(is_null(rows["generic"][name]) for name in COST_COLUMNS), "the generic product has no cost of its own"
    for product_id, row in ((pid, rows[pid]) for pid in PUBLISHED_IDS):
        vectors = area / row["resolution_m"] ** 2
        gigabytes = vectors * row["bytes_per_vector"] / 1e9
        assert row["area_km2"] == pytest.approx(area / 1e6, rel=1e-6), product_id
        assert row["vectors"] == pytest.approx(vectors, rel=1e-6), product_id
        assert row["storage_gb"] == pytest.approx(gigabytes, rel=1e-6), product_id
        assert row["storage_usd_month"] == pytest.approx(gigabytes * STORAGE_USD_PER_GB_MONTH, rel=1e-6), product_id
        assert row["egress_usd"] == pytest.approx(gigabytes * EGRESS_USD_PER_GB, rel=1e-6), product_id


def test_without_extent_the_cost_columns_are_null(without_extent):
    layer, _ = without_extent
    rows = rows_of(layer)
    assert sorted(rows) == sorted(PRODUCT_IDS)
    for product_id, row in rows.items():
        assert all(is_null(row[name]) for name in COST_COLUMNS), (product_id, {n: row[n] for n in COST_COLUMNS})
        if product_id == "generic":
            assert is_null(row["resolution_m"]) and is_null(row["dims"]) and row["name"], row
            continue
        assert not is_null(row["resolution_m"]) and not is_null(row["dims"]) and row["name"], product_id


# --- the HTML page ------------------------------------------------------------------------------------------------


def test_html_names_every_product_and_the_price_basis(with_extent, memory_with_extent):
    out, results = with_extent
    page = out / "catalog.html"
    assert results["OUTPUT_HTML"] == str(page)
    assert page.is_file()
    text = page.read_text(encoding="utf-8")
    assert text.lstrip().lower().startswith("<!doctype html")
    for product_id, row in rows_of(memory_with_extent).items():
        assert f"<td>{product_id}</td>" in text, product_id
        assert html.escape(row["name"]) in text, row["name"]
    assert "$0.023" in text and "$0.09" in text
    assert "Storage (GB)" in text and "Egress ($)" in text


def test_html_says_the_generic_product_takes_its_numbers_from_the_file(with_extent):
    out, _ = with_extent
    text = (out / "catalog.html").read_text(encoding="utf-8")
    row = next(line for line in text.splitlines() if "<td>generic</td>" in line)
    cells = [cell.split("</td>")[0] for cell in row.split("<td")[1:]]
    assert cells[3].endswith(">from the file") and cells[4].endswith(">from the file"), cells[:5]
    assert "your own files" in row and "None" not in row


def test_html_without_extent_has_no_cost_columns(without_extent):
    _, page = without_extent
    text = page.read_text(encoding="utf-8")
    assert all(f"<td>{product_id}</td>" in text for product_id in PRODUCT_IDS)
    assert "Storage (GB)" not in text and "Egress ($)" not in text


# --- the area of the extent ---------------------------------------------------------------------------------------


def _utm_square_area():
    """Geodesic area of the 10 km UTM 32N square below (densified edges)."""
    lons, lats = Transformer.from_crs("EPSG:32632", "EPSG:4326", always_xy=True).transform(
        *densified_box(700000.0, 6650000.0, 710000.0, 6660000.0)
    )
    return geod_area_m2(lons, lats)


AREA_CASES = {
    # id: (EXTENT, reference area in m^2, relative tolerance)
    "small-box": (EXTENT, box_area_m2(*BOX), 1e-6),
    "ten-degrees": ("0,10,40,50 [EPSG:4326]", box_area_m2(0, 40, 10, 50), 1e-2),
    "whole-world": ("-180,180,-90,90 [EPSG:4326]", box_area_m2(-180, -90, 180, 90), 1e-2),
    "wide-band": ("-120,120,30,40 [EPSG:4326]", box_area_m2(-120, 30, 120, 40), 1e-2),
    # a 10 km x 10 km square in UTM 32N, 200 km east of the central meridian at 60 N (a map canvas in UTM)
    "utm-square": ("700000,710000,6650000,6660000 [EPSG:32632]", _utm_square_area(), 1e-2),
}


@pytest.mark.parametrize("case", list(AREA_CASES))
def test_area_of_the_extent(case):
    extent, reference, tolerance = AREA_CASES[case]
    aef = rows_of(as_layer(run({"EXTENT": extent, "OUTPUT": "memory:"})["OUTPUT"]))["aef"]
    assert aef["area_km2"] == pytest.approx(reference / 1e6, rel=tolerance), f"{extent}: expected {reference / 1e6:,.1f} km2"
    assert aef["storage_gb"] == pytest.approx(reference / AEF_PIXEL_M2 * AEF_BYTES / 1e9, rel=tolerance)
