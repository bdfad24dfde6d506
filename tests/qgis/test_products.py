"""geoembed:load on one layout of every non-AEF product, read back through QGIS's own GDAL and OGR providers.

Each case runs once per session through processing.run(); expectations come from the fixture generators
(tests.fixtures.*: expected_at, chips, fragments) and from QgsCoordinateTransform, never from geoembed.

Pixel products are sampled on a lon/lat lattice; patch products at the centres of the output pixels (each pixel
holds the patch containing its centre). Points whose prediction changes within a few tens of metres (tile seams,
water and nodata boxes, patch edges, near-ties between overlapping patches) are skipped, so every remaining
comparison is exact.
"""

import json
import math
from dataclasses import dataclass

import numpy as np
import pytest
from qgis.core import (
    Qgis,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsPointXY,
    QgsProject,
    QgsRasterLayer,
    QgsVectorLayer,
    QgsWkbTypes,
)

from geoembed.qgis_compat import GEOMETRY_POINT, GEOMETRY_POLYGON, IDENTIFY_VALUE
from tests.fixtures.all_products import build_all
from tests.fixtures.fields import ring_contains, utm_epsg

from .helpers import NODATA, TOLERANCE, run_processing

LONLAT = QgsCoordinateReferenceSystem("EPSG:4326")
STABLE_M = 30.0  # patch products: a prediction must hold this far around a sampled point, in metres of the output CRS
MAX_POINTS = 60  # per product (identify reads every band at each point)
PATCH_FIELDS = ["id", "date", "product", "dims", "embedding"]

# lon/lat boxes (west, south, east, north)
TESSERA_BOX = (5.986, 44.996, 6.004, 45.004)  # across grid_5.99_45.00 (UTM 31N) and grid_6.00_45.00 (UTM 32N)
COPERNICUS_BOX = (4.0, 43.0, 11.0, 48.0)  # the land block lon 5..10 x lat 44..47 and empty cells around it
# Patch products: each box drops some patches, reaches past the patches on one side at least, and lies more than half
# a cell inside the snapped output grid on another (so border pixels are centred outside the box).
CLAY_BOX = (7.05, 44.60, 7.40, 44.75)  # v0 chips: drops the southern row (44.54..44.59)
EARTH_INDEX_BOX = (16.285, 46.4825, 16.318, 46.50)  # across 33TWM and 33TXM; north of the patches (46.497)
MAJOR_TOM_BOX = (14.09, 40.77, 14.31, 40.86)  # both cells, 454U_119R (2021 + 2022) and 454U_120R (2021)


def extent_text(box):
    return "{0},{2},{1},{3} [EPSG:4326]".format(*box)


@dataclass(frozen=True)
class Case:
    product: str
    source: object  # info -> path
    crs: str
    band_names: tuple
    expected: object  # info -> f(lon, lat) -> vector or None
    box: tuple = None  # EXTENT (lon/lat) or None
    kind: str = "pixel"
    year: int = None
    nodata_points: object = None  # info -> [(crs, x, y)] that must read as nodata
    rows: object = None  # patch products: info -> fixture rows [{"id", "date", "ring", "bounds", "embedding"}]
    geometry: object = GEOMETRY_POLYGON  # the output geometry type: GEOMETRY_POLYGON or GEOMETRY_POINT
    stable_deg: float = 0.0003  # pixel products: a prediction must hold this far (degrees) around a sampled point


def _clay_rows(info):
    return [{**chip, "id": str(chip["index"]), "date": chip["date"].isoformat()} for chip in info["clay"]["files"]["v0"]["chips"]]


def _earth_index_rows(info, keys=("polygons", "two_row_groups")):
    files = info["earth-index"]["files"]
    return [{**row, "date": "2024-01-01"} for key in keys for row in files[key]["rows"]]


def _tessera_water(info):
    west, south, east, north = TESSERA_BOX
    points = []
    for tile in info["tessera"]["tiles"]:
        for box in tile["water_boxes"]:
            w, s, e, n = max(box[0], west), max(box[1], south), min(box[2], east), min(box[3], north)
            if w < e and s < n:
                points.append(("EPSG:4326", (w + e) / 2, (s + n) / 2))
    return points


def _presto_zero_box(info):
    x0, res, _, y0, _, _ = info["presto"]["geotransform"]
    row0, row1, col0, col1 = info["presto"]["zero_box"]
    return [("EPSG:25231", x0 + res * (col0 + col1) / 2, y0 - res * (row0 + row1) / 2)]


def _esd_nodata_box(info):
    x0, res, _, y0, _, _ = info["esd"]["geotransform"]
    row0, row1, col0, col1 = info["esd"]["nodata_box"]
    return [("EPSG:32631", x0 + res * (col0 + col1) / 2, y0 - res * (row0 + row1) / 2)]


CASES = {
    "tessera": Case(
        "tessera",
        lambda i: i["tessera"]["download_dir"],
        f"EPSG:{utm_epsg((TESSERA_BOX[0] + TESSERA_BOX[2]) / 2, (TESSERA_BOX[1] + TESSERA_BOX[3]) / 2)}",  # 32631
        tuple(f"T{i:03d}" for i in range(128)),
        lambda i: i["tessera"]["expected_at"],
        box=TESSERA_BOX,
        year=2024,
        nodata_points=_tessera_water,
    ),
    "copernicus-embed": Case(
        "copernicus-embed",
        lambda i: i["copernicus-embed"]["tif"],
        "EPSG:4326",
        tuple(f"CE{i:03d}" for i in range(768)),
        lambda i: i["copernicus-embed"]["expected_at"],
        box=COPERNICUS_BOX,
        nodata_points=lambda i: [("EPSG:4326", 4.5, 43.5), ("EPSG:4326", 10.75, 47.75), ("EPSG:4326", 7.5, 43.25)],
    ),
    "presto": Case(
        "presto",
        lambda i: i["presto"]["path"],
        "EPSG:25231",
        tuple(f"b{i}" for i in range(128)),
        lambda i: i["presto"]["expected_at"],
        year=2019,
        nodata_points=_presto_zero_box,
    ),
    "esd": Case(
        "esd",
        lambda i: i["esd"]["path"],
        "EPSG:32631",
        tuple(f"M{m:02d}_{k}" for m in range(1, 13) for k in range(6)),
        lambda i: i["esd"]["expected_at"],
        year=2024,
        nodata_points=_esd_nodata_box,
    ),
    "clay": Case(
        "clay",
        lambda i: i["clay"]["files"]["v0"]["path"],
        f"EPSG:{utm_epsg((CLAY_BOX[0] + CLAY_BOX[2]) / 2, (CLAY_BOX[1] + CLAY_BOX[3]) / 2)}",  # 32632
        tuple(f"CL{i:03d}" for i in range(768)),
        lambda i: lambda lon, lat: i["clay"]["expected_at"]("v0", lon, lat),
        box=CLAY_BOX,
        kind="patch",
        year=2023,
        rows=_clay_rows,
    ),
    "earth-index": Case(
        "earth-index",
        lambda i: i["earth-index"]["dataset_dir"],
        "EPSG:32633",
        tuple(f"EI{i:03d}" for i in range(384)),
        lambda i: i["earth-index"]["expected_at"],
        box=EARTH_INDEX_BOX,
        kind="patch",
        year=2024,
        rows=_earth_index_rows,
    ),
    "earth-index-points": Case(
        "earth-index",
        lambda i: i["earth-index"]["points_dir"],
        "EPSG:32633",
        tuple(f"EI{i:03d}" for i in range(384)),
        # points become 320 m squares around them: the same patches as the polygons of 33TWM
        lambda i: lambda lon, lat: _containing(_earth_index_rows(i, ("polygons",)), lon, lat),
        box=EARTH_INDEX_BOX,
        kind="patch",
        year=2024,
        rows=lambda i: _earth_index_rows(i, ("points",)),
        geometry=GEOMETRY_POINT,
    ),
    "major-tom": Case(
        "major-tom",
        lambda i: i["major-tom"]["datasets"]["dinov2"]["dir"],
        f"EPSG:{utm_epsg((MAJOR_TOM_BOX[0] + MAJOR_TOM_BOX[2]) / 2, (MAJOR_TOM_BOX[1] + MAJOR_TOM_BOX[3]) / 2)}",  # 32633
        tuple(f"MT{i:03d}" for i in range(768)),
        lambda i: lambda lon, lat: i["major-tom"]["expected_at"]("dinov2", lon, lat),
        box=MAJOR_TOM_BOX,
        kind="patch",
        year=2022,
    ),
}
RASTER_CASES = list(CASES)
PATCH_OUTPUT_CASES = ["clay", "earth-index", "earth-index-points"]


def _containing(rows, lon, lat):
    return next((row["embedding"] for row in rows if ring_contains(row["ring"], lon, lat)), None)


# --- fixtures ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def product_fixtures(tmp_path_factory):
    """Every non-AEF product fixture, built once per session: {product id: build() dict}."""
    return build_all(tmp_path_factory.mktemp("products"))


@pytest.fixture(scope="session")
def product_runs(tmp_path_factory, product_fixtures):
    """run(case) -> (output folder, results); each case runs once per session (failures are remembered too)."""
    cache = {}

    def run(key):
        if key not in cache:
            case = CASES[key]
            out = tmp_path_factory.mktemp(f"load-{key}")
            parameters = {"PRODUCT": case.product, "SOURCE": str(case.source(product_fixtures)), "OUTPUT": str(out / "out.tif")}
            if case.box:
                parameters["EXTENT"] = extent_text(case.box)
            if case.rows:
                parameters["OUTPUT_PATCHES"] = str(out / "patches.gpkg")
            try:
                cache[key] = (out, run_processing(parameters), None)
            except Exception as exc:  # every test of this case reports the same failure
                cache[key] = (out, None, exc)
        out, results, exc = cache[key]
        if exc is not None:
            raise exc
        return out, results

    return run


@pytest.fixture()
def loaded(product_runs, product_fixtures):
    """loaded(key) -> (layer, results, info) with the OUTPUT opened by QGIS's GDAL provider."""

    def load(key):
        out, results = product_runs(key)
        layer = QgsRasterLayer(str(out / "out.tif"), key, "gdal")
        assert layer.isValid(), f"QGIS cannot open {out / 'out.tif'}"
        return layer, results, product_fixtures

    return load


# --- reading through QGIS ------------------------------------------------------------------------------------------


def transform(source, target):
    return QgsCoordinateTransform(source, target, QgsProject.instance())


def same(a, b):
    if a is None or b is None:
        return a is None and b is None
    return np.array_equal(np.asarray(a), np.asarray(b))


def pixel_points(layer, expected, stable, target=MAX_POINTS, steps=30):
    """Stable (lon, lat, layer point, expected) on a lon/lat lattice inside the layer (pixel products)."""
    to_layer, pixel = transform(LONLAT, layer.crs()), layer.rasterUnitsPerPixelX()
    inner = layer.extent().buffered(-2 * pixel)
    box = transform(layer.crs(), LONLAT).transformBoundingBox(inner)
    points = []
    for i in range(steps):
        for j in range(steps):
            lon = box.xMinimum() + box.width() * (i + 0.37) / steps  # off the fixtures' 0.002 degree patch edges
            lat = box.yMinimum() + box.height() * (j + 0.61) / steps
            point = to_layer.transform(QgsPointXY(lon, lat))
            if not inner.contains(point):
                continue
            value = expected(lon, lat)
            around = ((stable, 0), (-stable, 0), (0, stable), (0, -stable))
            if all(same(value, expected(lon + dx, lat + dy)) for dx, dy in around):
                points.append((lon, lat, point, value))
    return _thin(points, target)


def inside(box, lon, lat):
    return box[0] < lon < box[2] and box[1] < lat < box[3]


def centre_points(layer, expected, where=lambda lon, lat: True, target=MAX_POINTS):
    """Stable (lon, lat, layer point, expected) at the output pixel centres whose lon/lat satisfy where (patch products)."""
    to_lonlat = transform(layer.crs(), LONLAT)
    extent, width, height = layer.extent(), layer.width(), layer.height()
    dx, dy = layer.rasterUnitsPerPixelX(), layer.rasterUnitsPerPixelY()
    points = []
    for row in range(height):
        for col in range(width):
            x, y = extent.xMinimum() + dx * (col + 0.5), extent.yMaximum() - dy * (row + 0.5)
            centre = to_lonlat.transform(QgsPointXY(x, y))
            if not where(centre.x(), centre.y()):
                continue
            value = expected(centre.x(), centre.y())
            stable = True
            for ox, oy in ((STABLE_M, 0), (-STABLE_M, 0), (0, STABLE_M), (0, -STABLE_M)):
                moved = to_lonlat.transform(QgsPointXY(x + ox, y + oy))
                stable = stable and same(value, expected(moved.x(), moved.y()))
            if stable:
                points.append((centre.x(), centre.y(), QgsPointXY(x, y), value))
    return _thin(points, target)


def _thin(points, target):
    """At most `target` points, evenly spread over the list."""
    if len(points) <= target:
        return points
    step = len(points) / target
    return [points[int(k * step)] for k in range(target)]


def read(layer, point, bands):
    """(identify values of every band (None = nodata), {band: (value, ok)} from sample())."""
    provider = layer.dataProvider()
    identified = provider.identify(point, IDENTIFY_VALUE)
    assert identified.isValid(), identified.error().message()
    return identified.results(), {band: provider.sample(point, band) for band in bands}


def is_nodata(identified, samples):
    return all(v is None for v in identified.values()) and all(not ok or math.isnan(value) for value, ok in samples.values())


# --- 1. the raster OUTPUT --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", RASTER_CASES)
def test_output_crs(loaded, key):
    layer, results, _ = loaded(key)
    expected = CASES[key].crs
    assert layer.crs().authid() == expected, f"{key}: {layer.crs().authid()} ({layer.crs().description()}), expected {expected}"
    assert QgsCoordinateReferenceSystem(results["CRS"]).authid() == expected, results["CRS"]


@pytest.mark.parametrize("key", RASTER_CASES)
def test_band_count_names_type_and_nodata(loaded, key):
    layer, _, _ = loaded(key)
    names = CASES[key].band_names
    assert layer.bandCount() == len(names)
    provider = layer.dataProvider()
    wrong_names = [(b, layer.bandName(b)) for b in range(1, len(names) + 1) if not layer.bandName(b).endswith(names[b - 1])]
    assert not wrong_names, f"{len(wrong_names)} band names differ, first: {wrong_names[:3]}; expected e.g. {names[0]}"
    assert {provider.dataType(b) for b in range(1, len(names) + 1)} == {Qgis.DataType.Float32}
    assert all(provider.sourceHasNoDataValue(b) for b in range(1, len(names) + 1))
    assert {provider.sourceNoDataValue(b) for b in range(1, len(names) + 1)} == {NODATA}


@pytest.mark.parametrize("key", RASTER_CASES)
def test_results_name_the_product_and_year(loaded, key):
    layer, results, _ = loaded(key)
    assert results["PRODUCT"] == CASES[key].product
    if CASES[key].year is not None:
        assert results["YEAR"] == CASES[key].year


@pytest.mark.parametrize("key", RASTER_CASES)
def test_values_match_the_fixture(loaded, key):
    layer, _, info = loaded(key)
    case = CASES[key]
    expected = case.expected(info)
    if case.kind == "pixel":
        points = pixel_points(layer, expected, case.stable_deg)
    else:  # pixels centred inside the EXTENT: their patch meets the EXTENT, so it was read
        points = centre_points(layer, expected, lambda lon, lat: inside(case.box, lon, lat))
    compare(layer, key, points)
    valid = sum(value is not None for *_, value in points)
    assert valid >= (15 if case.kind == "pixel" else 5), f"{key}: only {valid} predictable valid points"
    if case.kind == "patch":
        assert_no_empty_border(layer, key)


def assert_no_empty_border(layer, key):
    """Patch products cover their patches and no more: every edge row and column of the output holds a vector."""
    provider = layer.dataProvider()
    block = provider.block(1, layer.extent(), layer.width(), layer.height())
    valid = np.array([[not block.isNoData(row, col) for col in range(layer.width())] for row in range(layer.height())])
    edges = {"north": valid[0], "south": valid[-1], "west": valid[:, 0], "east": valid[:, -1]}
    empty = [name for name, line in edges.items() if not line.any()]
    assert not empty, f"{key}: an empty {', '.join(empty)} border ({layer.width()} x {layer.height()} pixels)"


# The EXTENT cuts through patches only in these cases (elsewhere every output pixel is centred inside it).
BORDER_CASES = ["earth-index", "major-tom"]


@pytest.mark.parametrize("key", BORDER_CASES)
def test_patch_values_in_border_pixels_centred_outside_the_extent(loaded, key):
    """A border cell that the EXTENT cuts through holds the product's value for that cell too, even where that patch
    lies wholly outside the EXTENT."""
    layer, _, info = loaded(key)
    case = CASES[key]
    points = centre_points(layer, case.expected(info), lambda lon, lat: not inside(case.box, lon, lat), 10**6)
    assert any(value is not None for *_, value in points), "test design: no border pixel centred in a patch"
    compare(layer, key, points)


def compare(layer, key, points):
    """Read every point through QGIS and compare with the fixture (None = nodata); fails listing the mismatches."""
    bands = (1, 2, layer.bandCount())
    problems = []
    for lon, lat, point, value in points:
        identified, samples = read(layer, point, bands)
        where = f"({lon:.5f}, {lat:.5f})"
        if value is None:
            if not is_nodata(identified, samples):
                problems.append(f"{where} should be nodata, read band 1 = {identified.get(1)}")
            continue
        want = np.asarray(value, dtype=np.float64)  # Presto: the raw uint16 numbers, as floats
        got = np.array([np.nan if identified[b] is None else identified[b] for b in range(1, layer.bandCount() + 1)])
        if got.shape != want.shape or not np.allclose(got, want, rtol=0, atol=TOLERANCE):
            worst = int(np.nanargmax(np.abs(got - want))) if got.shape == want.shape and not np.isnan(got).all() else 0
            problems.append(f"{where} band {worst + 1}: read {got[worst]}, expected {want[worst]}")
        for band, (sampled, ok) in samples.items():
            if not ok or not math.isclose(sampled, want[band - 1], abs_tol=TOLERANCE):
                problems.append(f"{where} sample band {band} = ({sampled}, {ok}), expected {want[band - 1]}")
    assert not problems, f"{key}: {len(problems)} mismatches of {len(points)} points, first ones:\n" + "\n".join(problems[:12])


@pytest.mark.parametrize("key", [k for k, c in CASES.items() if c.nodata_points])
def test_nodata_areas_read_as_nodata(loaded, key):
    """Tessera water, Copernicus empty cells, Presto's all-zero block, ESD's all-zero block."""
    layer, _, info = loaded(key)
    case = CASES[key]
    for crs, x, y in case.nodata_points(info):
        source = QgsCoordinateReferenceSystem(crs)
        point = transform(source, layer.crs()).transform(QgsPointXY(x, y))
        lonlat = transform(source, LONLAT).transform(QgsPointXY(x, y))
        assert case.expected(info)(lonlat.x(), lonlat.y()) is None, "test design: the fixture has a value there"
        assert layer.extent().contains(point), f"{crs} {x},{y} is outside the output"
        identified, samples = read(layer, point, (1, 2, layer.bandCount()))
        assert is_nodata(identified, samples), f"{key} at {crs} {x:.4f},{y:.4f}: band 1 = {identified.get(1)}"


def test_tessera_output_spans_both_tiles(loaded):
    """Valid values on both sides of the seam between grid_5.99_45.00 (31N) and grid_6.00_45.00 (32N)."""
    layer, _, info = loaded("tessera")
    points = pixel_points(layer, info["tessera"]["expected_at"], CASES["tessera"].stable_deg, 10**6)
    west = [p for p in points if p[3] is not None and p[0] < 5.995]
    east = [p for p in points if p[3] is not None and p[0] > 5.995]
    assert len(west) >= 5 and len(east) >= 5, (len(west), len(east))
    for lon, lat, point, value in west[:3] + east[:3]:
        identified, _ = read(layer, point, ())
        got = np.array([identified[b] for b in range(1, 129)], dtype=np.float64)
        np.testing.assert_allclose(got, value, rtol=0, atol=TOLERANCE, err_msg=f"({lon}, {lat})")


# --- 2. OUTPUT_PATCHES -----------------------------------------------------------------------------------------------


def meets(bounds, box):
    return bounds[0] <= box[2] and box[0] <= bounds[2] and bounds[1] <= box[3] and box[1] <= bounds[3]


def expected_patches(case, info):
    """Fixture rows meeting the EXTENT: bounding boxes overlap (for points: the point lies inside)."""
    rows = case.rows(info)
    if case.geometry == GEOMETRY_POINT:
        return [r for r in rows if meets((*r["centre"], *r["centre"]), case.box)]
    return [r for r in rows if meets(r["bounds"], case.box)]


@pytest.fixture()
def patches_layer(product_runs, product_fixtures):
    def open_layer(key):
        out, results = product_runs(key)
        assert results.get("OUTPUT_PATCHES"), f"no OUTPUT_PATCHES in {results}"
        layer = QgsVectorLayer(str(results["OUTPUT_PATCHES"]), "patches", "ogr")
        assert layer.isValid(), f"QGIS cannot open {results['OUTPUT_PATCHES']}"
        return layer, product_fixtures

    return open_layer


@pytest.mark.parametrize("key", PATCH_OUTPUT_CASES)
def test_patches_layer_fields_geometry_and_crs(patches_layer, key):
    layer, _ = patches_layer(key)
    names = [f.name() for f in layer.fields()]
    assert [n for n in names if n != "fid"] == PATCH_FIELDS, names
    assert layer.crs().authid() == "EPSG:4326"
    assert QgsWkbTypes.geometryType(layer.wkbType()) == CASES[key].geometry, QgsWkbTypes.displayString(layer.wkbType())


@pytest.mark.parametrize("key", PATCH_OUTPUT_CASES)
def test_patches_are_those_meeting_the_extent(patches_layer, key):
    layer, info = patches_layer(key)
    case = CASES[key]
    wanted = expected_patches(case, info)
    # test design: the extent keeps some patches and drops others
    assert 0 < len(wanted) < len(case.rows(info))
    assert layer.featureCount() == len(wanted)
    got = sorted((f["id"], f["date"]) for f in layer.getFeatures())
    assert got == sorted((r["id"], r["date"]) for r in wanted)


@pytest.mark.parametrize("key", PATCH_OUTPUT_CASES)
def test_patch_embeddings_and_geometries_match_the_fixture(patches_layer, key):
    layer, info = patches_layer(key)
    case = CASES[key]
    rows = {(r["id"], r["date"]): r for r in case.rows(info)}
    checked = 0
    for feature in layer.getFeatures():
        row = rows[(feature["id"], feature["date"])]
        assert feature["product"] == case.product
        assert feature["dims"] == len(row["embedding"])
        vector = json.loads(feature["embedding"])
        np.testing.assert_allclose(vector, row["embedding"], rtol=0, atol=TOLERANCE, err_msg=feature["id"])
        geometry = feature.geometry()
        if case.geometry == GEOMETRY_POINT:
            point = geometry.asPoint()
            assert (point.x(), point.y()) == pytest.approx(row["centre"], abs=1e-9)
        else:
            box = geometry.boundingBox()
            got = (box.xMinimum(), box.yMinimum(), box.xMaximum(), box.yMaximum())
            assert got == pytest.approx(row["bounds"], abs=1e-9)
            assert geometry.contains(QgsPointXY(*row["centre"]))
        checked += 1
    assert checked == layer.featureCount() > 0


def test_patches_to_a_memory_layer(product_fixtures, tmp_path):
    """OUTPUT_PATCHES='memory:' comes back as a layer with the same features."""
    case = CASES["clay"]
    results = run_processing(
        {
            "PRODUCT": "clay",
            "SOURCE": str(case.source(product_fixtures)),
            "EXTENT": extent_text(case.box),
            "OUTPUT": str(tmp_path / "out.tif"),
            "OUTPUT_PATCHES": "memory:",
        }
    )
    layer = results["OUTPUT_PATCHES"]
    if isinstance(layer, str):
        layer = QgsProject.instance().mapLayer(layer)
    assert isinstance(layer, QgsVectorLayer) and layer.isValid(), results
    assert [f.name() for f in layer.fields()] == PATCH_FIELDS
    assert layer.crs().authid() == "EPSG:4326"
    assert layer.featureCount() == len(expected_patches(case, product_fixtures))
    feature = next(layer.getFeatures())
    assert len(json.loads(feature["embedding"])) == feature["dims"] == 768


def test_no_patches_output_for_a_pixel_product(product_fixtures, tmp_path):
    """Asking a pixel product for OUTPUT_PATCHES warns and writes only the raster."""
    patches = tmp_path / "patches.gpkg"
    results = run_processing(
        {
            "PRODUCT": "presto",
            "SOURCE": str(product_fixtures["presto"]["path"]),
            "OUTPUT": str(tmp_path / "out.tif"),
            "OUTPUT_PATCHES": str(patches),
        }
    )
    assert (tmp_path / "out.tif").exists()
    assert "OUTPUT_PATCHES" not in results or not results["OUTPUT_PATCHES"]
    assert not patches.exists()


def test_patches_to_a_shapefile_keep_whole_embeddings_or_fail(product_fixtures, tmp_path):
    """A shapefile text field holds at most 254 characters: the run must not report success with cut-off embeddings."""
    from qgis.core import QgsProcessingException

    case = CASES["earth-index"]
    patches = tmp_path / "patches.shp"
    try:
        results = run_processing(
            {
                "PRODUCT": case.product,
                "SOURCE": str(case.source(product_fixtures)),
                "EXTENT": extent_text(case.box),
                "OUTPUT": str(tmp_path / "out.tif"),
                "OUTPUT_PATCHES": str(patches),
            }
        )
    except QgsProcessingException as exc:  # refusing the format is fine, with a message that says why
        assert "embedding" in str(exc).lower() or "shapefile" in str(exc).lower(), str(exc)
        return
    layer = QgsVectorLayer(str(results["OUTPUT_PATCHES"]), "patches", "ogr")
    assert layer.isValid() and layer.featureCount() > 0
    cut = []
    for feature in layer.getFeatures():
        try:
            assert len(json.loads(feature["embedding"])) == 384
        except (ValueError, AssertionError):
            cut.append((feature["id"], len(feature["embedding"])))
    assert not cut, f"{len(cut)} of {layer.featureCount()} embeddings are not whole JSON vectors, e.g. (id, characters) {cut[:3]}"
