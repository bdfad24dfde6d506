"""geoembed:zonal through Processing, its output fields compared with brute-force numpy.

The embedding layer is made by geoembed:load from the session's AEF mirror (a UTM grid with a nodata box) and read
back with GDAL. Expectations: pixel centres inside each polygon by a winding-number test in the raster's CRS (polygons
in another CRS are moved there vertex by vertex with pyproj), then plain numpy means over the valid ones.
"""

import json

import numpy as np
import pytest
from osgeo import gdal, osr
from qgis.core import QgsFeature, QgsGeometry, QgsPointXY, QgsVectorLayer
from qgis.PyQt.QtCore import QByteArray

from geoembed.qgis_compat import FIELD_DOUBLE, FIELD_LONGLONG
from tests.support.polygons import inside_polygons, pixel_centres

from .refusals import assert_refused
from .test_analysis_algorithms import (
    BANDS,
    EXTENT,
    NODATA,
    RecordingFeedback,
    files_in,
    point_layer,
    read_embedding,
    run,
    transformer,
)

TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def embedding(provider_ready, aef_mirror, tmp_path_factory):
    output = tmp_path_factory.mktemp("zonal-embedding") / "embeddings.tif"
    run("load", {"SOURCE": str(aef_mirror), "YEAR": 2024, "EXTENT": EXTENT, "OUTPUT": str(output)})
    emb = read_embedding(output)
    assert gdal.Open(emb.path).GetMetadataItem("GEOEMBED_PRODUCT") == "aef"
    return emb


# --- polygons in pixel coordinates of the embedding, and the brute force --------------------------


def to_map(emb, ring):
    """(col, row) pixel coordinates to the raster's CRS."""
    return [(emb.x0 + c * emb.res, emb.y0 - r * emb.res) for c, r in ring]


def closed(ring):
    return list(ring) + [ring[0]]


def centres_inside(emb, parts):
    """(rows, cols) bool of pixel centres inside any part (a list of outer rings in the raster's CRS)."""
    centres = pixel_centres(emb.x0, emb.y0, emb.res, emb.res, emb.width, emb.height)
    return inside_polygons(*centres, [[ring] for ring in parts])


def expected(emb, parts, all_touched_pixel=None):
    """(normalised mean, spread, pixels) of the valid pixels under the parts (AEF: unit vectors, so normalised)."""
    if all_touched_pixel is None:
        take = centres_inside(emb, parts) & emb.valid
    else:
        take = np.zeros_like(emb.valid)
        take[all_touched_pixel] = emb.valid[all_touched_pixel]
    vectors = emb.values[:, take].T.astype(np.float64)
    if len(vectors) == 0:
        return None, None, 0
    direction = vectors.mean(axis=0)
    direction /= np.linalg.norm(direction)
    spread = float(np.mean(1.0 - vectors @ direction / np.linalg.norm(vectors, axis=1)))
    return direction, spread, len(vectors)


def layer_of(crs, zones, multi=False):
    """zones: [(name, [outer ring, ...]) ...] in crs; one (multi)polygon feature per zone, field 'name'."""
    layer = QgsVectorLayer(f"{'MultiPolygon' if multi else 'Polygon'}?crs={crs}&field=name:string", "zones", "memory")
    assert layer.isValid()
    features = []
    for name, parts in zones:
        feature = QgsFeature(layer.fields())
        polygons = [[[QgsPointXY(x, y) for x, y in closed(ring)]] for ring in parts]
        geometry = QgsGeometry.fromMultiPolygonXY(polygons) if multi else QgsGeometry.fromPolygonXY(polygons[0])
        feature.setGeometry(geometry)
        feature.setAttributes([name])
        features.append(feature)
    assert layer.dataProvider().addFeatures(features)[0]
    return layer


def nodata_pixel(emb):
    """(row, col) of a nodata pixel with valid pixels 8 columns to its east (the nodata box's edge)."""
    rows, cols = np.nonzero(~emb.valid[10:-10, 10:-10])
    for row, col in zip(rows + 10, cols + 10):
        if emb.valid[row, col + 8 : col + 12].all() and not emb.valid[row - 3 : row + 4, col - 3 : col + 1].any():
            return int(row), int(col)
    raise AssertionError("no nodata edge in the embedding")


def box(c0, r0, c1, r1):
    return [(c0, r0), (c1, r0), (c1, r1), (c0, r1)]


@pytest.fixture(scope="module")
def zones(embedding):
    """Pixel-space rings: one across the nodata edge, two overlapping, a multipolygon, one smaller than a pixel."""
    row, col = nodata_pixel(embedding)
    return {
        "nodata-edge": [[(col - 5.3, row - 6.2), (col + 12.4, row - 5.1), (col + 11.6, row + 6.7), (col - 4.2, row + 5.9)]],
        "first": [box(40.3, 30.2, 80.6, 62.7)],
        "overlapping": [[(60.4, 50.3), (100.2, 48.6), (95.7, 90.1), (55.2, 85.4)]],
        "multi": [box(150.3, 20.4, 160.2, 28.1), [(200.6, 150.2), (215.3, 152.7), (206.1, 166.4)]],
        "tiny": [[(120.1, 120.1), (120.4, 120.15), (120.2, 120.4)]],  # inside pixel (row 120, col 120), no centre
    }


def check_feature(feature, emb, parts, all_touched_pixel=None):
    mean, spread, pixels = expected(emb, parts, all_touched_pixel)
    assert feature["pixels"] == pixels, feature["name"]
    got = [feature[name] for name in BANDS]
    if pixels == 0:
        assert all(_is_null(v) for v in got) and _is_null(feature["spread"]), feature["name"]
        return
    np.testing.assert_allclose(np.array(got, dtype=np.float64), mean, rtol=0, atol=TOLERANCE, err_msg=feature["name"])
    assert feature["spread"] == pytest.approx(spread, abs=TOLERANCE), feature["name"]


def _is_null(value):
    return value is None or (hasattr(value, "isNull") and value.isNull())


# --- the tests -------------------------------------------------------------------------------------


def test_zonal_means_equal_numpy_for_overlapping_nodata_and_tiny_polygons(embedding, zones):
    crs = f"EPSG:{embedding.epsg}"
    singles = [(name, [to_map(embedding, ring) for ring in rings]) for name, rings in zones.items() if name != "multi"]
    layer = layer_of(crs, singles)
    feedback = RecordingFeedback()
    out = run("zonal", {"INPUT": embedding.path, "ZONES": layer, "OUTPUT": "TEMPORARY_OUTPUT"}, feedback)["OUTPUT"]
    assert out.fields().names() == ["name", "pixels", "spread", *BANDS]
    assert out.fields().field("pixels").type() == FIELD_LONGLONG
    assert all(out.fields().field(name).type() == FIELD_DOUBLE for name in ["spread", *BANDS])
    assert out.featureCount() == len(singles) and out.crs().authid() == crs
    features = {f["name"]: f for f in out.getFeatures()}
    for name, parts in singles:
        check_feature(features[name], embedding, parts)
        assert features[name].geometry().equals(next(f for f in layer.getFeatures() if f["name"] == name).geometry())
    nodata_edge = centres_inside(embedding, singles[0][1])
    assert (nodata_edge & ~embedding.valid).sum() > 20 and features["nodata-edge"]["pixels"] > 20, "crosses nodata"
    first, overlapping = centres_inside(embedding, singles[1][1]), centres_inside(embedding, singles[2][1])
    assert (first & overlapping).sum() > 100, "the two zones overlap"
    assert features["first"]["pixels"] == (first & embedding.valid).sum(), "overlaps are counted in both"
    assert features["tiny"]["pixels"] == 0
    assert len(feedback.warnings) == 1 and "1 of 4 zones" in feedback.warnings[0] and "ALL_TOUCHED" in feedback.warnings[0]
    assert any("L2-normalised (aef" in line for line in feedback.infos)


def test_zonal_multipolygon_in_another_crs(embedding, zones):
    """A multipolygon given in lon/lat: reprojected to the raster's CRS vertex by vertex, both parts counted."""
    lonlat = []
    for ring in zones["multi"]:
        xs, ys = zip(*to_map(embedding, ring))
        lons, lats = transformer(f"EPSG:{embedding.epsg}", "EPSG:4326").transform(xs, ys)
        lonlat.append(list(zip(lons, lats)))
    layer = layer_of("EPSG:4326", [("multi", lonlat)], multi=True)
    out = run("zonal", {"INPUT": embedding.path, "ZONES": layer, "OUTPUT": "TEMPORARY_OUTPUT"})["OUTPUT"]
    feature = next(out.getFeatures())
    assert out.crs().authid() == "EPSG:4326"
    back = []
    for ring in lonlat:
        xs, ys = transformer("EPSG:4326", f"EPSG:{embedding.epsg}").transform(*zip(*ring))
        back.append(list(zip(xs, ys)))
    check_feature(feature, embedding, back)
    parts = [centres_inside(embedding, [ring]) & embedding.valid for ring in back]
    assert all(part.sum() > 10 for part in parts) and feature["pixels"] == sum(part.sum() for part in parts)


def test_zonal_all_touched_takes_the_pixel_under_a_tiny_polygon(embedding, zones):
    assert embedding.valid[120, 120]
    layer = layer_of(f"EPSG:{embedding.epsg}", [("tiny", [to_map(embedding, zones["tiny"][0])])])
    feedback = RecordingFeedback()
    parameters = {"INPUT": embedding.path, "ZONES": layer, "ALL_TOUCHED": True, "OUTPUT": "TEMPORARY_OUTPUT"}
    out = run("zonal", parameters, feedback)["OUTPUT"]
    feature = next(out.getFeatures())
    check_feature(feature, embedding, None, all_touched_pixel=(120, 120))
    assert feature["pixels"] == 1 and feature["spread"] == pytest.approx(0.0, abs=1e-6)
    assert feedback.warnings == []


def test_zonal_geoparquet_output_matches_the_vector_output(embedding, zones, tmp_path):
    import pyarrow.parquet as pq
    from pyproj import CRS

    crs = f"EPSG:{embedding.epsg}"
    singles = [(name, [to_map(embedding, ring) for ring in rings]) for name, rings in zones.items() if name != "multi"]
    layer = layer_of(crs, singles)
    vector, parquet = tmp_path / "zones.gpkg", tmp_path / "zones.parquet"
    results = run("zonal", {"INPUT": embedding.path, "ZONES": layer, "OUTPUT": str(vector), "OUTPUT_PARQUET": str(parquet)})
    assert results["OUTPUT_PARQUET"] == str(parquet)
    assert files_in(tmp_path) == ["zones.gpkg", "zones.parquet"]
    out = QgsVectorLayer(str(vector), "zones", "ogr")
    rows = {f["name"]: f for f in out.getFeatures()}
    table = pq.read_table(parquet)
    assert table.column_names == ["name", "pixels", "spread", *BANDS, "geometry"]
    geo = json.loads(table.schema.metadata[b"geo"])["columns"]["geometry"]
    assert geo["encoding"] == "WKB" and geo["geometry_types"] == ["Polygon"]
    assert CRS.from_json_dict(geo["crs"]).to_epsg() == embedding.epsg
    data = table.to_pydict()
    for index, name in enumerate(data["name"]):
        assert data["pixels"][index] == rows[name]["pixels"]
        if data["pixels"][index] == 0:
            assert data["spread"][index] is None and all(data[b][index] is None for b in BANDS)
            continue
        got = np.array([data[b][index] for b in BANDS], dtype=np.float64)
        np.testing.assert_allclose(got, [rows[name][b] for b in BANDS], atol=1e-6)
        assert data["spread"][index] == pytest.approx(rows[name]["spread"], abs=1e-12)
        geometry = QgsGeometry()
        geometry.fromWkb(QByteArray(data["geometry"][index]))
        assert geometry.equals(rows[name].geometry()), name


def test_zonal_keeps_input_fields_named_like_its_own(embedding, zones):
    layer = QgsVectorLayer(f"Polygon?crs=EPSG:{embedding.epsg}&field=pixels:string&field=A00:double", "zones", "memory")
    feature = QgsFeature(layer.fields())
    feature.setGeometry(QgsGeometry.fromPolygonXY([[QgsPointXY(x, y) for x, y in closed(to_map(embedding, zones["first"][0]))]]))
    feature.setAttributes(["mine", 1.5])
    layer.dataProvider().addFeatures([feature])
    out = run("zonal", {"INPUT": embedding.path, "ZONES": layer, "OUTPUT": "TEMPORARY_OUTPUT"})["OUTPUT"]
    assert out.fields().names()[:5] == ["pixels", "A00", "pixels_emb", "spread", "A00_emb"]
    row = next(out.getFeatures())
    assert row["pixels"] == "mine" and row["A00"] == 1.5 and row["pixels_emb"] > 100


# --- refusals --------------------------------------------------------------------------------------


def test_zonal_refuses_points_as_zones(embedding, tmp_path):
    points = point_layer(f"EPSG:{embedding.epsg}", [((embedding.x0 + 100, embedding.y0 - 100), ["a"])])
    parameters = {"INPUT": embedding.path, "ZONES": points, "OUTPUT": str(tmp_path / "z.gpkg")}
    assert_refused("zonal", parameters, ["ZONES", "polygon"], tmp_path, "points as ZONES")


def test_zonal_refuses_zones_that_miss_the_raster(embedding, tmp_path):
    far = [("far", [[(2.0, 10.0), (2.1, 10.0), (2.1, 10.1), (2.0, 10.1)]])]
    parameters = {"INPUT": embedding.path, "ZONES": layer_of("EPSG:4326", far), "OUTPUT": str(tmp_path / "z.gpkg")}
    parameters["OUTPUT_PARQUET"] = str(tmp_path / "z.parquet")
    assert_refused("zonal", parameters, ["ZONES", "INPUT", "overlap"], tmp_path, "no overlap")


def test_zonal_refuses_zones_on_nodata_only(embedding, tmp_path):
    row, col = nodata_pixel(embedding)
    ring = to_map(embedding, box(col - 2.5, row - 2.5, col + 0.5, row + 0.5))
    parameters = {"INPUT": embedding.path, "ZONES": layer_of(f"EPSG:{embedding.epsg}", [("n", [ring])])}
    parameters["OUTPUT"] = str(tmp_path / "z.gpkg")
    assert_refused("zonal", parameters, ["valid pixel", "overlap"], tmp_path, "on nodata")


def test_zonal_refuses_a_parquet_output_of_another_kind(embedding, zones, tmp_path):
    layer = layer_of(f"EPSG:{embedding.epsg}", [("first", [to_map(embedding, zones["first"][0])])])
    parameters = {"INPUT": embedding.path, "ZONES": layer, "OUTPUT": str(tmp_path / "z.gpkg")}
    parameters["OUTPUT_PARQUET"] = str(tmp_path / "z.csv")
    assert_refused("zonal", parameters, ["OUTPUT_PARQUET", ".parquet"], tmp_path, "csv as OUTPUT_PARQUET")


def test_zonal_refuses_a_missing_input(zones, tmp_path):
    layer = layer_of("EPSG:4326", [("x", [[(6.0, 45.0), (6.01, 45.0), (6.01, 45.01)]])])
    parameters = {"INPUT": str(tmp_path / "missing.tif"), "ZONES": layer, "OUTPUT": str(tmp_path / "out" / "z.gpkg")}
    (tmp_path / "out").mkdir()
    assert_refused("zonal", parameters, ["exist"], tmp_path / "out", "missing INPUT")


def test_zonal_writes_many_bands_to_a_shapefile(tmp_path):
    """More than 255 fields: a shapefile's DBF holds them (GDAL warns that old readers may stop at 255)."""
    bands = 300
    values = np.random.default_rng(2).normal(size=(bands, 6, 6)).astype(np.float32)
    path = tmp_path / "wide.tif"
    dataset = gdal.GetDriverByName("GTiff").Create(str(path), 6, 6, bands, gdal.GDT_Float32)
    dataset.SetGeoTransform((500000.0, 10.0, 0.0, 5000000.0, 0.0, -10.0))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32631)
    dataset.SetProjection(srs.ExportToWkt())
    for index in range(bands):
        dataset.GetRasterBand(index + 1).SetNoDataValue(NODATA)
        dataset.GetRasterBand(index + 1).WriteArray(values[index])
    dataset = None
    ring = [(500012.0, 4999988.0), (500043.0, 4999988.0), (500043.0, 4999957.0), (500012.0, 4999957.0)]
    out = tmp_path / "out"
    out.mkdir()
    results = run("zonal", {"INPUT": str(path), "ZONES": layer_of("EPSG:32631", [("a", [ring])]), "OUTPUT": str(out / "z.shp")})
    layer = QgsVectorLayer(results["OUTPUT"], "z", "ogr")
    assert layer.isValid() and layer.fields().count() == 1 + 2 + bands
    feature = next(layer.getFeatures())
    names = layer.fields().names()[3:]
    expected_mean = values[:, 1:4, 1:4].reshape(bands, -1).astype(np.float64).mean(axis=1)
    assert feature["pixels"] == 9
    np.testing.assert_allclose([feature[n] for n in names], expected_mean, atol=1e-6)
