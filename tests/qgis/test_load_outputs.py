"""geoembed:load outputs, read back through QGIS's own GDAL raster provider.

Every case runs twice: through processing.run() (console, scripts, runAndLoadResults) and through the
C++ QgsProcessingAlgorithm::run() that qgis_process uses.
"""

import json
import math
import os

import pytest
from osgeo import gdal
from pyproj import Transformer
from qgis.core import (
    Qgis,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsPointXY,
    QgsProject,
    QgsRasterLayer,
)

from geoembed.qgis_compat import IDENTIFY_VALUE

from .helpers import EXTENT, EXTENT_BOX, NODATA, RUNNERS, case_setup, check_values

CASES = ("tile", "index", "mirror-root", "zone-folder")
runners = pytest.mark.parametrize("runner", list(RUNNERS))
products = pytest.mark.parametrize("product", ["aef", "auto"])
cases = pytest.mark.parametrize("case", CASES)


@runners
@products
@cases
def test_layer_is_a_north_up_float32_embedding_raster(load_case, case, product, runner):
    loaded = load_case(case, product, runner)
    layer = loaded["layer"]
    assert layer.crs().authid() == loaded["crs"]
    assert layer.bandCount() == 64
    provider = layer.dataProvider()
    assert [provider.dataType(b) for b in range(1, 65)] == [Qgis.DataType.Float32] * 64  # never Byte: the int8 trap
    for band in range(1, 65):
        assert layer.bandName(band).endswith(f"A{band - 1:02d}"), layer.bandName(band)
        assert provider.sourceHasNoDataValue(band)
        assert provider.sourceNoDataValue(band) == NODATA
    dataset = gdal.Open(str(loaded["output"]))
    gt = dataset.GetGeoTransform()
    assert gt[1] == pytest.approx(10.0) and gt[5] == pytest.approx(-10.0), f"not north-up at 10 m: {gt}"
    assert gt[2] == 0 and gt[4] == 0
    assert [dataset.GetRasterBand(b).GetDescription() for b in range(1, 65)] == [f"A{i:02d}" for i in range(64)]
    extent = layer.extent()
    got = (extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum())
    if loaded["extent"] is not None:
        assert got == pytest.approx(loaded["extent"], abs=1e-6)
    else:  # the requested EXTENT in UTM 32N, snapped outwards to the 10 m grid
        wanted = Transformer.from_crs("EPSG:4326", "EPSG:32632", always_xy=True).transform_bounds(*EXTENT_BOX, densify_pts=21)
        for value in got:
            assert value / 10.0 == pytest.approx(round(value / 10.0), abs=1e-6)
        assert got[0] <= wanted[0] + 1e-6 and got[1] <= wanted[1] + 1e-6
        assert got[2] >= wanted[2] - 1e-6 and got[3] >= wanted[3] - 1e-6
        assert all(abs(g - w) < 10.5 for g, w in zip(got, wanted)), (got, wanted)


@runners
@products
@cases
def test_results_dictionary(load_case, case, product, runner):
    loaded = load_case(case, product, runner)
    results = loaded["results"]
    assert results["OUTPUT"] == str(loaded["output"])
    assert results["PRODUCT"] == "aef"
    assert results["YEAR"] == 2024
    assert QgsCoordinateReferenceSystem(results["CRS"]).authid() == loaded["crs"]


@runners
@products
@cases
def test_values_at_patch_centres_match_the_fixture(load_case, case, product, runner):
    loaded = load_case(case, product, runner)
    valid, nodata = check_values(loaded["layer"], loaded["specs"], 2024)
    assert len(valid) >= 40, f"only {len(valid)} predictable valid points"
    if case in ("index", "mirror-root"):
        # both UTM zones contribute: points west and east of the zone boundary at 6°E
        assert sum(lon < 6.0 for lon, _ in valid) >= 10 and sum(lon > 6.0 for lon, _ in valid) >= 10
        assert nodata, "the EXTENT reaches beyond the tiles and over the nodata box"
    if case == "tile":
        assert nodata, "the tile's nodata box must be sampled"


def nodata_box_points(spec):
    """Map coordinates (tile CRS) of the centre and corners (inset by 2 pixels) of each nodata box."""
    north = spec.south + 10 * spec.height
    points = []
    for row0, row1, col0, col1 in spec.nodata_boxes:
        for row, col in (((row0 + row1) / 2, (col0 + col1) / 2), (row0 + 2, col0 + 2), (row1 - 2, col1 - 2)):
            points.append((spec.west + 10 * col, north - 10 * row))
    return points


@runners
@products
@pytest.mark.parametrize("case", ["tile", "index", "mirror-root"])
def test_nodata_box_reads_as_nodata(load_case, case, product, runner, tile_2024_31n):
    loaded = load_case(case, product, runner)
    spec, _ = tile_2024_31n
    layer = loaded["layer"]
    provider = layer.dataProvider()
    transform = QgsCoordinateTransform(QgsCoordinateReferenceSystem(f"EPSG:{spec.epsg}"), layer.crs(), QgsProject.instance())
    for x, y in nodata_box_points(spec):
        point = transform.transform(QgsPointXY(x, y))
        assert layer.extent().contains(point)
        for band in (1, 2, 17, 64):
            value, ok = provider.sample(point, band)
            assert not ok or math.isnan(value), f"band {band} at {x},{y}: {value}"
        results = provider.identify(point, IDENTIFY_VALUE).results()
        assert all(results[band] is None for band in range(1, 65)), results
    assert provider.sourceNoDataValue(1) == NODATA
    # just outside the box (10 pixels east of its centre) the tile has values again
    x, y = nodata_box_points(spec)[0]
    row0, row1, col0, col1 = spec.nodata_boxes[0]
    value, ok = provider.sample(transform.transform(QgsPointXY(x + 10 * ((col1 - col0) / 2 + 10), y)), 1)
    assert ok and value != NODATA


@runners
@products
@cases
def test_provenance_metadata(load_case, case, product, runner):
    loaded = load_case(case, product, runner)
    dataset = gdal.Open(str(loaded["output"]))
    meta = dataset.GetMetadata()
    assert meta["GEOEMBED_PRODUCT"] == "aef"
    assert meta["GEOEMBED_YEAR"] == "2024"
    dequantization = meta["GEOEMBED_DEQUANTIZATION"]
    assert "127.5" in dequantization and "-128" in dequantization
    sources = json.loads(meta["GEOEMBED_SOURCES"])
    expected = sorted(spec.name for spec in loaded["specs"])
    assert sorted(os.path.basename(path) for path in sources) == expected
    assert all(os.path.isfile(path) for path in sources), sources
    html = loaded["layer"].dataProvider().htmlMetadata()
    assert "GEOEMBED_PRODUCT=aef" in html and "GEOEMBED_YEAR=2024" in html


@runners
@pytest.mark.parametrize("crs", ["EPSG:3857", "EPSG:32631"])
def test_explicit_output_crs(crs, runner, load_once, aef_mirror, aef_specs, tile_2024_31n):
    parameters, specs, _, _ = case_setup("index", aef_mirror, aef_specs, tile_2024_31n)
    output, results = load_once({"PRODUCT": "aef", **parameters, "CRS": crs}, runner)
    layer = QgsRasterLayer(str(output), "embeddings", "gdal")
    assert layer.isValid()
    assert layer.crs().authid() == crs
    assert QgsCoordinateReferenceSystem(results["CRS"]).authid() == crs
    assert gdal.Open(str(output)).GetGeoTransform()[5] < 0
    wanted = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform_bounds(*EXTENT_BOX, densify_pts=21)
    extent = layer.extent()
    assert extent.xMinimum() <= wanted[0] + 1e-6 and extent.yMinimum() <= wanted[1] + 1e-6
    assert extent.xMaximum() >= wanted[2] - 1e-6 and extent.yMaximum() >= wanted[3] - 1e-6
    valid, _ = check_values(layer, specs, 2024)
    assert sum(lon < 6.0 for lon, _ in valid) >= 10 and sum(lon > 6.0 for lon, _ in valid) >= 10


@runners
def test_extent_in_a_projected_crs(runner, load_once, index_file, aef_specs):
    """EXTENT in EPSG:3857: the default output CRS is still the UTM zone of its centre."""
    box = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True).transform_bounds(*EXTENT_BOX)
    extent = "{0},{2},{1},{3} [EPSG:3857]".format(*box)
    output, results = load_once({"PRODUCT": "auto", "SOURCE": str(index_file), "EXTENT": extent, "YEAR": 2024}, runner)
    layer = QgsRasterLayer(str(output), "embeddings", "gdal")
    assert layer.isValid() and layer.crs().authid() == "EPSG:32632"
    wanted = Transformer.from_crs("EPSG:3857", "EPSG:32632", always_xy=True).transform_bounds(*box, densify_pts=21)
    got = layer.extent()
    assert got.xMinimum() <= wanted[0] + 1e-6 < got.xMinimum() + 10.5
    assert got.yMaximum() - 10.5 < wanted[3] - 1e-6 <= got.yMaximum()
    specs = [s for s in aef_specs if s.year == 2024 and s.zone in ("31N", "32N")]
    valid, _ = check_values(layer, specs, 2024)
    assert sum(lon < 6.0 for lon, _ in valid) >= 10 and sum(lon > 6.0 for lon, _ in valid) >= 10


@runners
@pytest.mark.parametrize("year", [None, 2023])
def test_year_selection(runner, year, load_once, index_file, aef_specs):
    """No YEAR: the latest year with tiles (2024). YEAR 2023: only the 2023 tile, elsewhere nodata."""
    parameters = {"PRODUCT": "aef", "SOURCE": str(index_file), "EXTENT": EXTENT}
    if year is not None:
        parameters["YEAR"] = year
    output, results = load_once(parameters, runner)
    expected_year = year or 2024
    assert results["YEAR"] == expected_year
    assert gdal.Open(str(output)).GetMetadataItem("GEOEMBED_YEAR") == str(expected_year)
    layer = QgsRasterLayer(str(output), "embeddings", "gdal")
    specs = [s for s in aef_specs if s.year == expected_year and s.zone in ("31N", "32N")]
    valid, nodata = check_values(layer, specs, expected_year)
    assert len(valid) >= 40
    if expected_year == 2023:  # no 2023 tile east of the 31N one
        assert max(lon for lon, _ in valid) < 6.02 and any(lon > 6.02 for lon, _ in nodata)


@runners
def test_temporary_output(runner, tile_2024_31n):
    results = RUNNERS[runner]({"PRODUCT": "aef", "SOURCE": str(tile_2024_31n[1]), "OUTPUT": "TEMPORARY_OUTPUT"})
    assert results["OUTPUT"].endswith(".tif") and os.path.isfile(results["OUTPUT"])
    layer = QgsRasterLayer(results["OUTPUT"], "embeddings", "gdal")
    assert layer.isValid() and layer.bandCount() == 64 and layer.crs().authid() == "EPSG:32631"
