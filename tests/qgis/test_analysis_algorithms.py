"""geoembed:sample, geoembed:similarity and geoembed:resample run through Processing, checked against brute force.

The embedding layer is made once per module by geoembed:load from the session's AEF mirror. Every
expectation is computed here from that GeoTIFF read with osgeo.gdal into numpy (or from the fixture
generator's expected_values at patch centres), never by calling geoembed.analysis.
"""

import functools
import math
import struct
from dataclasses import dataclass

import numpy as np
import pytest
from osgeo import gdal, osr
from pyproj import Transformer
from qgis.core import (
    Qgis,
    QgsApplication,
    QgsFeature,
    QgsGeometry,
    QgsPointXY,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputLayerDefinition,
    QgsRasterLayer,
    QgsSingleBandPseudoColorRenderer,
    QgsVectorLayer,
)

from geoembed.qgis_compat import FIELD_DOUBLE, IDENTIFY_VALUE
from tests.fixtures.aef import PATCH_DEG, expected_values, patch_centre

from .helpers import error_message

EXTENT = "5.975,6.02,44.99,45.02 [EPSG:4326]"
NODATA = -9999.0
BANDS = [f"A{i:02d}" for i in range(64)]
TOLERANCE = 1e-5


# --- running algorithms ------------------------------------------------------------------------


class RecordingFeedback(QgsProcessingFeedback):
    """Keeps what the algorithm pushes, to count warnings and read the log."""

    def __init__(self):
        super().__init__()
        self.warnings, self.infos = [], []

    def pushWarning(self, message):  # noqa: N802 - QGIS API
        self.warnings.append(message)
        super().pushWarning(message)

    def pushInfo(self, message):  # noqa: N802 - QGIS API
        self.infos.append(message)
        super().pushInfo(message)


def run(name, parameters, feedback=None, context=None):
    """processing.run('geoembed:<name>', ...)."""
    import processing

    return processing.run(f"geoembed:{name}", parameters, feedback=feedback, context=context)


def run_cpp(name, parameters, feedback=None, context=None):
    """checkParameterValues + the C++ QgsProcessingAlgorithm::run(), as the toolbox and qgis_process do."""
    algorithm = QgsApplication.processingRegistry().createAlgorithmById(f"geoembed:{name}")
    assert algorithm is not None, f"geoembed:{name} is not registered"
    context = context if context is not None else QgsProcessingContext()
    feedback = feedback if feedback is not None else QgsProcessingFeedback()
    ok, message = algorithm.checkParameterValues(parameters, context)
    if not ok:
        raise QgsProcessingException(message)
    results, ok = QgsProcessingAlgorithm.run(algorithm, parameters, context, feedback, {}, False)
    assert ok
    return results


def one_line_error(caught, *words):
    message = error_message(caught.value).strip()
    assert message, "empty error message"
    assert "\n" not in message, f"not one line:\n{message}"
    assert "Traceback" not in message, message
    for word in words:
        assert word.lower() in message.lower(), f"{word!r} not in {message!r}"
    return message


def files_in(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --- the embedding layer and its brute-force reading -------------------------------------------


@dataclass
class Embedding:
    path: str
    values: np.ndarray  # (64, rows, cols) float32, north-up
    valid: np.ndarray  # (rows, cols)
    geotransform: tuple
    epsg: int

    @property
    def x0(self):
        return self.geotransform[0]

    @property
    def y0(self):
        return self.geotransform[3]

    @property
    def res(self):
        return self.geotransform[1]

    @property
    def height(self):
        return self.values.shape[1]

    @property
    def width(self):
        return self.values.shape[2]

    def pixel(self, x, y):
        """(row, col) of the pixel containing x/y (raster CRS), or None outside."""
        col, row = math.floor((x - self.x0) / self.res), math.floor((self.y0 - y) / self.res)
        return (row, col) if 0 <= row < self.height and 0 <= col < self.width else None

    def centre(self, row, col):
        return self.x0 + (col + 0.5) * self.res, self.y0 - (row + 0.5) * self.res

    def from_crs(self, crs, x, y):
        return transformer(crs, f"EPSG:{self.epsg}").transform(x, y)

    def to_crs(self, crs, x, y):
        return transformer(f"EPSG:{self.epsg}", crs).transform(x, y)

    def pixel_of_lonlat(self, lon, lat):
        return self.pixel(*self.from_crs("EPSG:4326", lon, lat))

    def vector_at_lonlat(self, lon, lat):
        row, col = self.pixel_of_lonlat(lon, lat)
        return self.values[:, row, col].astype(np.float64)


@functools.cache
def transformer(source, target):
    return Transformer.from_crs(source, target, always_xy=True)


def read_embedding(path):
    dataset = gdal.Open(str(path))
    values = dataset.ReadAsArray().astype(np.float32)
    srs = osr.SpatialReference(wkt=dataset.GetProjection())
    srs.AutoIdentifyEPSG()
    epsg = int(srs.GetAuthorityCode(None))
    assert [dataset.GetRasterBand(i + 1).GetDescription() for i in range(dataset.RasterCount)] == BANDS
    valid = ~(values == NODATA).any(axis=0)
    return Embedding(str(path), values, valid, dataset.GetGeoTransform(), epsg)


@pytest.fixture(scope="module")
def embedding(provider_ready, aef_mirror, tmp_path_factory):
    """geoembed:load over two UTM zones (a 10 m UTM 31N grid with a nodata box), read back with GDAL."""
    output = tmp_path_factory.mktemp("analysis-embedding") / "embeddings.tif"
    run("load", {"SOURCE": str(aef_mirror), "YEAR": 2024, "EXTENT": EXTENT, "OUTPUT": str(output)})
    emb = read_embedding(output)
    assert emb.geotransform[5] < 0 and emb.valid.any() and not emb.valid.all(), "the set-up needs valid and nodata pixels"
    return emb


@functools.cache
def _safe_patch_centres(path, margin):
    return tuple(_find_safe_patch_centres(read_embedding(path), margin))


def safe_patch_centres(emb, margin=3):
    """Patch centres (lon, lat) whose pixel and `margin` pixels around it are valid."""
    return list(_safe_patch_centres(emb.path, margin))


def _find_safe_patch_centres(emb, margin):
    x0, y0 = emb.x0, emb.y0
    x1, y1 = x0 + emb.width * emb.res, y0 - emb.height * emb.res
    lons, lats = emb.to_crs("EPSG:4326", [x0, x1, x1, x0], [y0, y0, y1, y1])
    out = []
    lat = patch_centre(0, min(lats))[1]
    while lat < max(lats):
        lon = patch_centre(min(lons), 0)[0]
        while lon < max(lons):
            where = emb.pixel_of_lonlat(lon, lat)
            if where is not None:
                row, col = where
                r0, r1, c0, c1 = row - margin, row + margin + 1, col - margin, col + margin + 1
                if r0 >= 0 and c0 >= 0 and r1 <= emb.height and c1 <= emb.width and emb.valid[r0:r1, c0:c1].all():
                    out.append((round(lon, 6), round(lat, 6)))
            lon += PATCH_DEG
        lat += PATCH_DEG
    return out


def nodata_lonlat(emb, margin=3):
    """lon/lat of a pixel deep inside a nodata area of the embedding."""
    rows, cols = np.nonzero(~emb.valid)
    for row, col in zip(rows, cols):
        r0, c0 = row - margin, col - margin
        inside = r0 >= 0 and c0 >= 0 and row + margin < emb.height and col + margin < emb.width
        if inside and not emb.valid[r0 : row + margin + 1, c0 : col + margin + 1].any():
            return tuple(float(v) for v in emb.to_crs("EPSG:4326", *emb.centre(row, col)))
    raise AssertionError("no nodata area in the embedding")


def outside_lonlat(emb):
    lon, lat = emb.to_crs("EPSG:4326", emb.x0 - 500.0, emb.y0 - 500.0)
    assert emb.pixel_of_lonlat(lon, lat) is None
    return lon, lat


def unit(vectors):
    vectors = np.asarray(vectors, dtype=np.float64)
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


def brute_cosine(emb, query):
    """(rows, cols) float64 cosine of every valid pixel to a unit query; NaN on nodata."""
    values = emb.values.astype(np.float64)
    norms = np.sqrt((values * values).sum(axis=0))
    cos = np.tensordot(query, values, axes=(0, 0)) / np.where(norms > 0, norms, 1.0)
    return np.where(emb.valid, cos, np.nan)


def query_of(vectors):
    """The L2-normalised mean of the L2-normalised query vectors (the contract of geoembed:similarity)."""
    return unit(unit(vectors).mean(axis=0))


# --- memory layers -----------------------------------------------------------------------------


def point_layer(crs, points, fields="cls:string"):
    """points: [((x, y), [attributes])] in crs."""
    spec = "&".join(f"field={f}" for f in fields.split(",")) if fields else ""
    layer = QgsVectorLayer(f"Point?crs={crs}&{spec}", "points", "memory")
    assert layer.isValid()
    features = []
    for (x, y), attributes in points:
        feature = QgsFeature(layer.fields())
        feature.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(x, y)))
        feature.setAttributes(list(attributes))
        features.append(feature)
    assert layer.dataProvider().addFeatures(features)[0]
    return layer


def polygon_layer(crs, polygons, fields="cls:string"):
    """polygons: [([(x, y), ...] outer ring, [attributes])] in crs."""
    spec = "&".join(f"field={f}" for f in fields.split(",")) if fields else ""
    layer = QgsVectorLayer(f"Polygon?crs={crs}&{spec}", "polygons", "memory")
    assert layer.isValid()
    features = []
    for ring, attributes in polygons:
        feature = QgsFeature(layer.fields())
        feature.setGeometry(QgsGeometry.fromPolygonXY([[QgsPointXY(x, y) for x, y in ring]]))
        feature.setAttributes(list(attributes))
        features.append(feature)
    assert layer.dataProvider().addFeatures(features)[0]
    return layer


def box_ring(xmin, ymin, xmax, ymax):
    return [(xmin, ymin), (xmax, ymin), (xmax, ymax), (xmin, ymax), (xmin, ymin)]


def pixel_box(emb, row0, row1, col0, col1):
    """A rectangle in the raster CRS holding exactly the centres of rows row0..row1-1 and cols col0..col1-1."""
    x0, y0, res = emb.x0, emb.y0, emb.res
    return box_ring(x0 + col0 * res + 3, y0 - row1 * res - 3, x0 + col1 * res + 3, y0 - row0 * res - 3)


def in_crs(emb, crs, lonlats):
    if crs == "EPSG:4326":
        return list(lonlats)
    xs, ys = transformer("EPSG:4326", crs).transform([p[0] for p in lonlats], [p[1] for p in lonlats])
    return list(zip(xs, ys))


def read_band(path, band=1):
    """A band through QGIS's raster provider: (values float64 with NaN on nodata, layer)."""
    layer = QgsRasterLayer(str(path), "read", "gdal")
    assert layer.isValid(), f"QGIS cannot open {path}"
    provider = layer.dataProvider()
    assert provider.dataType(band) == Qgis.DataType.Float32
    block = provider.block(band, layer.extent(), layer.width(), layer.height())
    assert block.isValid() and block.dataType() == Qgis.DataType.Float32
    out = np.frombuffer(bytes(block.data()), dtype=np.float32).reshape(layer.height(), layer.width()).astype(np.float64)
    if block.hasNoDataValue():
        out[out == block.noDataValue()] = np.nan
    return out, layer


# === geoembed:sample ===========================================================================


@pytest.fixture(scope="module")
def sample_points(embedding):
    """Eight valid patch centres spread over the layer, one point on nodata and one outside."""
    centres = safe_patch_centres(embedding)
    assert len(centres) > 40
    chosen = centres[:: len(centres) // 8][:8]
    return chosen, nodata_lonlat(embedding), outside_lonlat(embedding)


@pytest.mark.parametrize("crs", ["EPSG:4326", "EPSG:3857"])
def test_sample_adds_one_double_field_per_band_with_the_raster_values(embedding, sample_points, crs):
    chosen, _, _ = sample_points
    coords = in_crs(embedding, crs, chosen)
    layer = point_layer(crs, [(xy, [f"p{i}", i]) for i, xy in enumerate(coords)], "cls:string,n:integer")
    feedback = RecordingFeedback()
    out = run("sample", {"INPUT": embedding.path, "POINTS": layer, "OUTPUT": "TEMPORARY_OUTPUT"}, feedback)["OUTPUT"]
    assert out.fields().names() == ["cls", "n", *BANDS]
    for name in BANDS:
        assert out.fields().field(name).type() == FIELD_DOUBLE, name
    assert out.crs().authid() == crs
    assert out.featureCount() == len(chosen)
    assert feedback.warnings == []
    for feature in out.getFeatures():
        index = feature["n"]
        assert feature["cls"] == f"p{index}"
        lon, lat = chosen[index]
        got = np.array([feature[name] for name in BANDS], dtype=np.float64)
        assert np.allclose(got, expected_values(lon, lat), atol=1e-6), f"{crs} point {index}"
        assert np.allclose(got, embedding.vector_at_lonlat(lon, lat), atol=1e-6)
        point = feature.geometry().asPoint()
        assert (point.x(), point.y()) == pytest.approx(coords[index], abs=1e-6), "geometry must stay in the points' CRS"


def test_sample_outside_and_nodata_points_get_null_and_one_warning(embedding, sample_points):
    chosen, nodata, outside = sample_points
    lonlats = [chosen[0], nodata, chosen[1], outside]
    layer = point_layer("EPSG:4326", [(p, [f"p{i}"]) for i, p in enumerate(lonlats)])
    feedback = RecordingFeedback()
    out = run("sample", {"INPUT": embedding.path, "POINTS": layer, "OUTPUT": "TEMPORARY_OUTPUT"}, feedback)["OUTPUT"]
    features = {f["cls"]: f for f in out.getFeatures()}
    assert len(features) == 4
    for name in ("p1", "p3"):
        assert all(_is_null(features[name][band]) for band in BANDS), name
    for name, index in (("p0", 0), ("p2", 2)):
        got = np.array([features[name][band] for band in BANDS], dtype=np.float64)
        assert np.allclose(got, expected_values(*lonlats[index]), atol=1e-6)
    assert len(feedback.warnings) == 1, feedback.warnings
    assert "2 of 4" in feedback.warnings[0] and "NULL" in feedback.warnings[0]


def _is_null(value):
    return value is None or (hasattr(value, "isNull") and value.isNull())


def test_sample_writes_geoparquet(embedding, sample_points, tmp_path):
    import pyarrow.parquet as pq

    chosen, nodata, _ = sample_points
    lonlats = [*chosen[:3], nodata]
    coords = in_crs(embedding, "EPSG:3857", lonlats)
    layer = point_layer("EPSG:3857", [(xy, [f"p{i}", i]) for i, xy in enumerate(coords)], "cls:string,n:integer")
    output = tmp_path / "samples.parquet"
    feedback = RecordingFeedback()
    results = run("sample", {"INPUT": embedding.path, "POINTS": layer, "OUTPUT": str(output)}, feedback)
    assert results["OUTPUT"] == str(output)
    assert files_in(tmp_path) == ["samples.parquet"]
    assert len(feedback.warnings) == 1
    table = pq.read_table(output)
    assert table.column_names == ["cls", "n", *BANDS, "geometry"]
    assert table.column("cls").to_pylist() == ["p0", "p1", "p2", "p3"]
    import json

    geo = json.loads(table.schema.metadata[b"geo"])
    assert geo["primary_column"] == "geometry"
    column = geo["columns"]["geometry"]
    assert column["encoding"] == "WKB" and column["geometry_types"] == ["Point"]
    from pyproj import CRS

    assert CRS.from_json_dict(column["crs"]).to_epsg() == 3857
    xs, ys = [c[0] for c in coords], [c[1] for c in coords]
    assert column["bbox"] == pytest.approx([min(xs), min(ys), max(xs), max(ys)])
    for index, wkb in enumerate(table.column("geometry").to_pylist()):
        order, kind = struct.unpack_from("<BI", wkb)
        assert (order, kind) == (1, 1), "little-endian WKB Point"
        assert struct.unpack_from("<dd", wkb, 5) == pytest.approx(coords[index], abs=1e-6)
    rows = table.to_pydict()
    for index, lonlat in enumerate(lonlats):
        got = [rows[name][index] for name in BANDS]
        if index == 3:
            assert got == [None] * 64
        else:
            assert np.allclose(np.array(got, dtype=np.float64), expected_values(*lonlat), atol=1e-6)


def test_sample_geoparquet_keeps_an_input_field_named_like_a_band(embedding, sample_points, tmp_path):
    """A points field called A00 must survive in GeoParquet as it does in a vector OUTPUT (there: A00 + A00_emb)."""
    import pyarrow.parquet as pq

    chosen, _, _ = sample_points
    layer = point_layer("EPSG:4326", [(p, [f"label{i}"]) for i, p in enumerate(chosen[:2])], "A00:string")
    vector = run("sample", {"INPUT": embedding.path, "POINTS": layer, "OUTPUT": "TEMPORARY_OUTPUT"})["OUTPUT"]
    assert vector.fields().names()[:2] == ["A00", "A00_emb"]
    output = tmp_path / "samples.parquet"
    run("sample", {"INPUT": embedding.path, "POINTS": layer, "OUTPUT": str(output)})
    table = pq.read_table(output)
    assert table.column_names[:-1] == vector.fields().names(), "GeoParquet columns differ from the vector OUTPUT's fields"
    assert table.column("A00").to_pylist() == ["label0", "label1"], "the input attribute A00 was overwritten"


@pytest.mark.parametrize("output", ["vector", "parquet"])
def test_sample_multipoint_rows_carry_the_point_they_sampled(embedding, sample_points, tmp_path, output):
    """'One feature per input point': a 2-part MultiPoint gives two rows, each located at the part it sampled."""
    import pyarrow.parquet as pq

    chosen, _, _ = sample_points
    parts = [chosen[0], chosen[4]]
    layer = QgsVectorLayer("MultiPoint?crs=EPSG:4326&field=cls:string", "multi", "memory")
    feature = QgsFeature(layer.fields())
    feature.setGeometry(QgsGeometry.fromMultiPointXY([QgsPointXY(*p) for p in parts]))
    feature.setAttributes(["m"])
    assert layer.dataProvider().addFeatures([feature])[0]
    if output == "vector":
        out = run("sample", {"INPUT": embedding.path, "POINTS": layer, "OUTPUT": "TEMPORARY_OUTPUT"})["OUTPUT"]
        rows = [([f[b] for b in BANDS], [(p.x(), p.y()) for p in f.geometry().vertices()]) for f in out.getFeatures()]
    else:
        path = tmp_path / "multi.parquet"
        run("sample", {"INPUT": embedding.path, "POINTS": layer, "OUTPUT": str(path)})
        table = pq.read_table(path).to_pydict()
        rows = [([table[b][i] for b in BANDS], [struct.unpack_from("<dd", table["geometry"][i], 5)]) for i in range(2)]
    assert len(rows) == 2
    for values, points in rows:
        part = next(i for i, p in enumerate(parts) if np.allclose(values, expected_values(*p), atol=1e-6))
        assert points == [pytest.approx(parts[part], abs=1e-9)], f"row with the values of part {part} is located at {points}"


@pytest.mark.parametrize("suffix", [".gpkg", ".parquet"])
def test_sample_without_overlap_fails_in_one_line_and_writes_nothing(embedding, tmp_path, suffix):
    layer = point_layer("EPSG:4326", [((10.0, 10.0), ["far"]), ((10.01, 10.0), ["far"])])
    output = tmp_path / f"samples{suffix}"
    with pytest.raises(QgsProcessingException) as caught:
        run("sample", {"INPUT": embedding.path, "POINTS": layer, "OUTPUT": str(output)})
    one_line_error(caught, "POINTS", "INPUT")
    assert files_in(tmp_path) == []


# === geoembed:similarity =======================================================================


@pytest.fixture(scope="module")
def similarity_setup(embedding, tmp_path_factory):
    """Three query points (EPSG:4326), K=1000 matches, the heatmap and matches written to a module folder."""
    centres = safe_patch_centres(embedding)
    queries = [centres[5], centres[len(centres) // 2], centres[-7]]
    folder = tmp_path_factory.mktemp("similarity")
    output, matches = folder / "heat.tif", folder / "matches.gpkg"
    layer = point_layer("EPSG:4326", [(p, ["q"]) for p in queries])
    results = run(
        "similarity", {"INPUT": embedding.path, "QUERY": layer, "K": 1000, "OUTPUT": str(output), "OUTPUT_MATCHES": str(matches)}
    )
    expected = brute_cosine(embedding, query_of([embedding.vector_at_lonlat(*p) for p in queries]))
    return {"results": results, "output": output, "matches": matches, "expected": expected, "queries": queries}


def test_similarity_heatmap_equals_brute_force_cosine(embedding, similarity_setup):
    got, layer = read_band(similarity_setup["output"])
    expected = similarity_setup["expected"]
    assert (layer.width(), layer.height()) == (embedding.width, embedding.height)
    assert layer.crs().authid() == f"EPSG:{embedding.epsg}"
    assert np.array_equal(np.isnan(got), ~embedding.valid), "nodata must be exactly the embedding's nodata"
    diff = np.abs(got - expected)[embedding.valid]
    assert diff.max() < TOLERANCE, f"max |heatmap - brute force| = {diff.max()}"
    # a few pixels through sample() as well, at pixel centres
    provider = layer.dataProvider()
    rows, cols = np.nonzero(embedding.valid)
    for index in np.linspace(0, len(rows) - 1, 25).astype(int):
        value, ok = provider.sample(QgsPointXY(*embedding.centre(rows[index], cols[index])), 1)
        assert ok and abs(value - expected[rows[index], cols[index]]) < TOLERANCE


def test_similarity_heatmap_keeps_nodata_minus_9999(embedding, similarity_setup):
    dataset = gdal.Open(str(similarity_setup["output"]))
    band = dataset.GetRasterBand(1)
    assert band.GetNoDataValue() == NODATA
    values = band.ReadAsArray()
    assert (values[~embedding.valid] == NODATA).all()
    assert (values[embedding.valid] != NODATA).all()
    assert QgsRasterLayer(str(similarity_setup["output"]), "h", "gdal").dataProvider().sourceNoDataValue(1) == NODATA


def _matches(path):
    layer = QgsVectorLayer(str(path), "matches", "ogr")
    assert layer.isValid(), path
    return layer, sorted(((f["rank"], f["score"], f.geometry().asPoint()) for f in layer.getFeatures()), key=lambda m: m[0])


def test_similarity_matches_are_the_k_best_pixels(embedding, similarity_setup):
    layer, matches = _matches(similarity_setup["matches"])
    expected = similarity_setup["expected"]
    k = 1000
    assert layer.crs().authid() == f"EPSG:{embedding.epsg}"
    assert [m[0] for m in matches] == list(range(1, k + 1))
    scores = np.array([m[1] for m in matches])
    assert (np.diff(scores) <= 0).all(), "ranks must follow decreasing scores"
    best = np.sort(expected[embedding.valid])[::-1][:k]
    assert np.abs(scores - best).max() < TOLERANCE, "scores are not the K largest similarities"
    heat = gdal.Open(str(similarity_setup["output"])).ReadAsArray().astype(np.float64)
    pixels = set()
    for rank, score, point in matches:
        where = embedding.pixel(point.x(), point.y())
        assert where is not None, f"match {rank} is outside the raster"
        row, col = where
        centre = embedding.centre(row, col)
        assert (point.x(), point.y()) == pytest.approx(centre, abs=1e-6), f"match {rank} is not at a pixel centre"
        assert abs(expected[row, col] - score) < TOLERANCE, f"match {rank}: score {score}, pixel has {expected[row, col]}"
        assert abs(heat[row, col] - score) < 1e-6, f"match {rank}: score differs from the heatmap"
        pixels.add(where)
    assert len(pixels) == k, "the same pixel is listed twice"
    above = np.argwhere(expected > scores[-1] + TOLERANCE)
    assert {tuple(p) for p in above} <= pixels, "a pixel scoring above the K-th match is missing"


def test_similarity_ties_go_to_the_earlier_pixel(embedding, tmp_path):
    """analysis/similarity.py TopK documents: ties go to the earlier pixel (north, then west).

    A hand-made 64 x 600 embedding (two 512-pixel blocks side by side) where pixels with col >= 500 and
    (row + col) % 3 == 0 hold the exact unit vector e0 (cosine exactly 1.0 to a query on one of them, whatever
    the summation order) and the others random vectors: the K = 10 matches must be the first ten e0 pixels in
    row-major order over the whole raster (four in the western block, six in the eastern one).
    """
    height, width = 64, 600
    rows, cols = np.mgrid[:height, :width]
    tied = ((rows + cols) % 3 == 0) & (cols >= 500)
    values = np.random.default_rng(7).normal(size=(64, height, width)).astype(np.float32)
    values /= np.linalg.norm(values, axis=0, keepdims=True)
    values[:, tied] = 0.0
    values[0, tied] = 1.0
    path = tmp_path / "ties.tif"
    dataset = gdal.GetDriverByName("GTiff").Create(str(path), width, height, 64, gdal.GDT_Float32)
    dataset.SetGeoTransform((embedding.x0, 10.0, 0.0, embedding.y0, 0.0, -10.0))
    dataset.SetProjection(gdal.Open(embedding.path).GetProjection())
    dataset.SetMetadata({"GEOEMBED_PRODUCT": "aef"})
    for index in range(64):
        band = dataset.GetRasterBand(index + 1)
        band.SetDescription(BANDS[index])
        band.SetNoDataValue(NODATA)
        band.WriteArray(values[index])
    dataset = None
    assert tied[32, 502]
    query = point_layer(f"EPSG:{embedding.epsg}", [(embedding.centre(32, 502), ["q"])])
    matches = tmp_path / "matches.gpkg"
    parameters = {
        "INPUT": str(path),
        "QUERY": query,
        "K": 10,
        "OUTPUT": str(tmp_path / "heat.tif"),
        "OUTPUT_MATCHES": str(matches),
    }
    run("similarity", parameters)
    _, found = _matches(matches)
    assert [score for _, score, _ in found] == [1.0] * 10
    pixels = [(math.floor((embedding.y0 - p.y()) / 10.0), math.floor((p.x() - embedding.x0) / 10.0)) for _, _, p in found]
    first = [tuple(int(v) for v in p) for p in np.argwhere(tied)[:10]]
    assert pixels == first, f"matches at {pixels}, expected the first tied pixels {first}"


def test_similarity_polygons_contribute_the_mean_of_their_pixels(embedding, tmp_path):
    """Two polygons (raster CRS), one half over nodata: each contributes the mean of its valid pixels."""
    valid = embedding.valid
    window = None
    for row in range(0, embedding.height - 8, 2):
        for col in range(0, embedding.width - 10, 2):
            share = valid[row : row + 8, col : col + 10].mean()
            if 0.3 < share < 0.7:
                window = (row, row + 8, col, col + 10)
                break
        if window:
            break
    assert window, "no window across a nodata edge"
    centres = safe_patch_centres(embedding, margin=8)
    r, c = embedding.pixel_of_lonlat(*centres[len(centres) // 3])
    second = (r - 4, r + 5, c - 5, c + 6)
    layer = polygon_layer(f"EPSG:{embedding.epsg}", [(pixel_box(embedding, *w), ["q"]) for w in (window, second)])
    means = []
    for r0, r1, c0, c1 in (window, second):
        block = embedding.values[:, r0:r1, c0:c1].astype(np.float64)
        ok = valid[r0:r1, c0:c1]
        means.append(block[:, ok].mean(axis=1))
    expected = brute_cosine(embedding, query_of(means))
    output = tmp_path / "heat.tif"
    run("similarity", {"INPUT": embedding.path, "QUERY": layer, "K": 0, "OUTPUT": str(output)})
    got, _ = read_band(output)
    assert np.abs(got - expected)[valid].max() < TOLERANCE


def test_similarity_negative_examples_are_subtracted(embedding, tmp_path):
    centres = safe_patch_centres(embedding)
    positives, negatives = [centres[3], centres[40]], [centres[20], centres[-3]]
    query = point_layer("EPSG:4326", [(p, ["q"]) for p in positives])
    negative = point_layer("EPSG:3857", [(xy, ["n"]) for xy in in_crs(embedding, "EPSG:3857", negatives)])
    output = tmp_path / "heat.tif"
    run("similarity", {"INPUT": embedding.path, "QUERY": query, "NEGATIVE": negative, "K": 0, "OUTPUT": str(output)})
    q = query_of([embedding.vector_at_lonlat(*p) for p in positives])
    n = query_of([embedding.vector_at_lonlat(*p) for p in negatives])
    expected = brute_cosine(embedding, q) - brute_cosine(embedding, n)
    got, _ = read_band(output)
    assert np.array_equal(np.isnan(got), ~embedding.valid)
    assert np.abs(got - expected)[embedding.valid].max() < TOLERANCE


def test_similarity_query_outside_fails_in_one_line(embedding, tmp_path):
    layer = point_layer("EPSG:4326", [(outside_lonlat(embedding), ["q"])])
    with pytest.raises(QgsProcessingException) as caught:
        run("similarity", {"INPUT": embedding.path, "QUERY": layer, "OUTPUT": str(tmp_path / "heat.tif")})
    one_line_error(caught, "QUERY")
    assert files_in(tmp_path) == []


def _assert_heatmap_style(layer):
    renderer = layer.renderer()
    assert isinstance(renderer, QgsSingleBandPseudoColorRenderer), type(renderer).__name__
    # inputBand() replaces band() (deprecated in newer QGIS; QGIS 3.22 has only band())
    assert (renderer.inputBand() if hasattr(renderer, "inputBand") else renderer.band()) == 1
    assert (renderer.classificationMin(), renderer.classificationMax()) == (-1.0, 1.0)


def test_similarity_run_and_load_results_uses_a_pseudocolor_renderer(embedding, project, tmp_path):
    import processing

    before = set(project.mapLayers())
    layer = point_layer("EPSG:4326", [(safe_patch_centres(embedding)[0], ["q"])])
    output = tmp_path / "heat.tif"
    processing.runAndLoadResults("geoembed:similarity", {"INPUT": embedding.path, "QUERY": layer, "OUTPUT": str(output)})
    loaded = [layer for layer_id, layer in project.mapLayers().items() if layer_id not in before]
    assert len(loaded) == 1 and loaded[0].source() == str(output)
    assert loaded[0].name() == "Similarity"
    _assert_heatmap_style(loaded[0])


def test_similarity_load_on_completion_uses_a_pseudocolor_renderer(embedding, project, tmp_path):
    from processing.gui.Postprocessing import handleAlgorithmResults

    before = set(project.mapLayers())
    context = QgsProcessingContext()
    context.setProject(project)
    feedback = QgsProcessingFeedback()
    output = str(tmp_path / "heat.tif")
    algorithm = QgsApplication.processingRegistry().createAlgorithmById("geoembed:similarity")
    query = point_layer("EPSG:4326", [(safe_patch_centres(embedding)[0], ["q"])])
    parameters = {"INPUT": embedding.path, "QUERY": query, "OUTPUT": QgsProcessingOutputLayerDefinition(output, project)}
    results, ok = QgsProcessingAlgorithm.run(algorithm, parameters, context, feedback, {}, False)
    assert ok and results["OUTPUT"] == output
    # Keywords only: QGIS 3.44 dropped the showResults argument that 3.22 had in fourth place.
    assert handleAlgorithmResults(algorithm, context, feedback, parameters=parameters)
    loaded = [layer for layer_id, layer in project.mapLayers().items() if layer_id not in before]
    assert [layer.source() for layer in loaded] == [output]
    _assert_heatmap_style(loaded[0])


# === geoembed:resample =========================================================================


def brute_aggregate(emb, x0, y0, res_x, res_y, width, height, crs=None):
    """(bands, height, width) L2-normalised sums of the valid source vectors whose centres fall in each target pixel."""
    rows, cols = np.nonzero(emb.valid)
    xs = emb.x0 + (cols + 0.5) * emb.res
    ys = emb.y0 - (rows + 0.5) * emb.res
    if crs is not None:
        xs, ys = transformer(f"EPSG:{emb.epsg}", crs).transform(xs, ys)
    tc = np.floor((np.asarray(xs) - x0) / res_x).astype(np.int64)
    tr = np.floor((y0 - np.asarray(ys)) / res_y).astype(np.int64)
    inside = (tc >= 0) & (tc < width) & (tr >= 0) & (tr < height)
    target = tr[inside] * width + tc[inside]
    vectors = emb.values[:, rows[inside], cols[inside]].astype(np.float64)
    sums = np.stack([np.bincount(target, weights=v, minlength=width * height) for v in vectors])
    counts = np.bincount(target, minlength=width * height)
    norms = np.linalg.norm(sums, axis=0)
    out = np.full(sums.shape, np.nan)
    ok = (counts > 0) & (norms > 0)
    out[:, ok] = sums[:, ok] / norms[ok]
    return out.reshape(len(vectors), height, width)


@pytest.fixture(scope="module")
def aggregated(embedding, tmp_path_factory):
    folder = tmp_path_factory.mktemp("aggregate")
    output = folder / "agg50.tif"
    feedback = RecordingFeedback()
    run("resample", {"INPUT": embedding.path, "MODE": "aggregate", "RESOLUTION": 50, "OUTPUT": str(output)}, feedback)
    width, height = math.ceil(embedding.width / 5), math.ceil(embedding.height / 5)
    expected = brute_aggregate(embedding, embedding.x0, embedding.y0, 50.0, 50.0, width, height)
    return output, expected, feedback


def test_resample_aggregate_grid_is_anchored_on_the_source(embedding, aggregated):
    output, expected, _ = aggregated
    dataset = gdal.Open(str(output))
    assert dataset.GetGeoTransform() == pytest.approx((embedding.x0, 50.0, 0.0, embedding.y0, 0.0, -50.0))
    assert (dataset.RasterXSize, dataset.RasterYSize, dataset.RasterCount) == (expected.shape[2], expected.shape[1], 64)
    assert [dataset.GetRasterBand(i + 1).GetDescription() for i in range(64)] == BANDS
    assert dataset.GetMetadataItem("GEOEMBED_PRODUCT") == "aef"
    assert "aggregate" in dataset.GetMetadataItem("GEOEMBED_RESAMPLING")


def test_resample_aggregate_equals_brute_force_sum_normalised(embedding, aggregated):
    output, expected, _ = aggregated
    for band in (1, 17, 64):
        got, layer = read_band(output, band)
        assert np.array_equal(np.isnan(got), np.isnan(expected[band - 1])), f"nodata differs in band {band}"
        ok = ~np.isnan(got)
        assert np.abs(got - expected[band - 1])[ok].max() < TOLERANCE, f"band {band}"
    provider = layer.dataProvider()
    rows, cols = np.nonzero(~np.isnan(expected[0]))
    for index in np.linspace(0, len(rows) - 1, 12).astype(int):
        row, col = rows[index], cols[index]
        point = QgsPointXY(embedding.x0 + (col + 0.5) * 50, embedding.y0 - (row + 0.5) * 50)
        identified = provider.identify(point, IDENTIFY_VALUE).results()
        got = np.array([identified[b] for b in range(1, 65)], dtype=np.float64)
        assert np.abs(got - expected[:, row, col]).max() < TOLERANCE, (row, col)
        assert abs(np.linalg.norm(got) - 1.0) < 1e-5


def test_resample_nearest_to_5m_copies_the_covering_pixel(embedding, tmp_path):
    output = tmp_path / "nearest5.tif"
    run("resample", {"INPUT": embedding.path, "MODE": "nearest", "RESOLUTION": 5, "OUTPUT": str(output)})
    dataset = gdal.Open(str(output))
    assert dataset.GetGeoTransform() == pytest.approx((embedding.x0, 5.0, 0.0, embedding.y0, 0.0, -5.0))
    assert (dataset.RasterXSize, dataset.RasterYSize) == (2 * embedding.width, 2 * embedding.height)
    got = dataset.ReadAsArray()
    expected = np.repeat(np.repeat(embedding.values, 2, axis=1), 2, axis=2)
    assert np.array_equal(got, expected)
    layer = QgsRasterLayer(str(output), "n", "gdal")
    for row, col in ((100, 100), (3, 250), (200, 40)):
        value, ok = layer.dataProvider().sample(QgsPointXY(*embedding.centre(row, col)), 5)
        assert ok == bool(embedding.valid[row, col])
        if ok:
            assert value == pytest.approx(float(embedding.values[4, row, col]), abs=1e-7)


@pytest.mark.parametrize("resolution, mode", [(50, "aggregate"), (5, "nearest")])
def test_resample_auto_picks_aggregate_for_coarser_and_nearest_for_finer(embedding, aggregated, tmp_path, resolution, mode):
    output = tmp_path / "auto.tif"
    feedback = RecordingFeedback()
    run("resample", {"INPUT": embedding.path, "MODE": "auto", "RESOLUTION": resolution, "OUTPUT": str(output)}, feedback)
    assert any(f"MODE=auto: {mode}" in line for line in feedback.infos), feedback.infos
    got = gdal.Open(str(output)).ReadAsArray()
    if mode == "aggregate":
        assert np.array_equal(got, gdal.Open(str(aggregated[0])).ReadAsArray())
    else:
        assert np.array_equal(got, np.repeat(np.repeat(embedding.values, 2, axis=1), 2, axis=2))


def _write_reference(path, epsg, x0, y0, res, width, height):
    dataset = gdal.GetDriverByName("GTiff").Create(str(path), width, height, 1, gdal.GDT_Byte)
    dataset.SetGeoTransform((x0, res, 0.0, y0, 0.0, -res))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    dataset.SetProjection(srs.ExportToWkt())
    dataset.GetRasterBand(1).Fill(1)
    dataset = None
    return path


def test_resample_reference_matches_another_grid_and_crs(embedding, tmp_path):
    cx, cy = embedding.to_crs("EPSG:3857", *embedding.centre(embedding.height // 2, embedding.width // 2))
    x0, y0, res, width, height = round(cx) - 1003.5, round(cy) + 801.25, 40.0, 50, 41
    reference = _write_reference(tmp_path / "ref.tif", 3857, x0, y0, res, width, height)
    output = tmp_path / "out" / "matched.tif"
    feedback = RecordingFeedback()
    run("resample", {"INPUT": embedding.path, "REFERENCE": str(reference), "OUTPUT": str(output)}, feedback)
    assert any("MODE=auto: aggregate" in line for line in feedback.infos), feedback.infos
    dataset = gdal.Open(str(output))
    assert dataset.GetGeoTransform() == pytest.approx((x0, res, 0.0, y0, 0.0, -res), abs=1e-6)
    assert (dataset.RasterXSize, dataset.RasterYSize) == (width, height)
    srs = osr.SpatialReference(wkt=dataset.GetProjection())
    wanted = osr.SpatialReference()
    wanted.ImportFromEPSG(3857)
    assert srs.IsSame(wanted), dataset.GetProjection()
    layer = QgsRasterLayer(str(output), "m", "gdal")
    ref_layer = QgsRasterLayer(str(reference), "r", "gdal")
    assert layer.extent() == ref_layer.extent() and layer.crs() == ref_layer.crs()
    expected = brute_aggregate(embedding, x0, y0, res, res, width, height, crs="EPSG:3857")
    got = dataset.ReadAsArray().astype(np.float64)
    got[got == NODATA] = np.nan
    assert np.array_equal(np.isnan(got), np.isnan(expected))
    assert np.nanmax(np.abs(got - expected)) < TOLERANCE


@pytest.mark.parametrize(
    "parameters, words",
    [
        ({"RESOLUTION": 0}, ["RESOLUTION", "greater than 0"]),
        ({"RESOLUTION": -10}, ["RESOLUTION", "greater than 0"]),
        ({"RESOLUTION": 5, "MODE": "aggregate"}, ["coarser", "nearest"]),
        ({}, ["RESOLUTION", "REFERENCE"]),
    ],
    ids=["zero", "negative", "aggregate-finer", "no-target"],
)
def test_resample_bad_target_fails_in_one_line(embedding, tmp_path, parameters, words):
    output = tmp_path / "out.tif"
    with pytest.raises(QgsProcessingException) as caught:
        run("resample", {"INPUT": embedding.path, **parameters, "OUTPUT": str(output)})
    one_line_error(caught, *words)
    assert files_in(tmp_path) == []


# === cancelling ==================================================================================


@pytest.fixture(scope="module")
def big_embedding(embedding, tmp_path_factory):
    """A 2 x 2 tiling of the embedding (736 x 694 pixels: four 512-pixel blocks), written with GDAL."""
    path = tmp_path_factory.mktemp("big") / "big.tif"
    values = np.tile(embedding.values, (1, 2, 2))
    source = gdal.Open(embedding.path)
    driver = gdal.GetDriverByName("GTiff")
    dataset = driver.Create(str(path), values.shape[2], values.shape[1], 64, gdal.GDT_Float32, ["TILED=YES"])
    dataset.SetGeoTransform(embedding.geotransform)
    dataset.SetProjection(source.GetProjection())
    dataset.SetMetadata(source.GetMetadata())
    for index in range(64):
        band = dataset.GetRasterBand(index + 1)
        band.SetDescription(BANDS[index])
        band.SetNoDataValue(NODATA)
        band.WriteArray(values[index])
    dataset = None
    return str(path)


def _training_points(embedding):
    centres = safe_patch_centres(embedding)
    return point_layer("EPSG:4326", [(p, ["ab"[i % 2]]) for i, p in enumerate(centres[:12])])


CANCEL_CASES = {
    "similarity": lambda emb, big, out: (
        "similarity",
        {
            "INPUT": big,
            "QUERY": point_layer("EPSG:4326", [(safe_patch_centres(emb)[0], ["q"])]),
            "K": 5,
            "OUTPUT": str(out / "heat.tif"),
            "OUTPUT_MATCHES": str(out / "matches.gpkg"),
        },
    ),
    "resample": lambda emb, big, out: (
        "resample",
        {"INPUT": big, "MODE": "nearest", "RESOLUTION": 10, "OUTPUT": str(out / "resampled.tif")},
    ),
    "train": lambda emb, big, out: (
        "train",
        {
            "INPUT": big,
            "TRAINING": _training_points(emb),
            "FIELD": "cls",
            "METHOD": "nearest_centroid",
            "OUTPUT": str(out / "classes.tif"),
            "OUTPUT_CONFIDENCE": str(out / "confidence.tif"),
            "OUTPUT_MODEL": str(out / "model.npz"),
            "OUTPUT_REPORT": str(out / "report.html"),
        },
    ),
}


@pytest.mark.parametrize("case", list(CANCEL_CASES))
def test_cancel_during_progress_leaves_nothing(embedding, big_embedding, tmp_path, case):
    out = tmp_path / "out"
    out.mkdir()
    name, parameters = CANCEL_CASES[case](embedding, big_embedding, out)
    feedback = QgsProcessingFeedback()
    progress = []

    def on_progress(value):
        progress.append(value)
        if 0 < value < 100:
            feedback.cancel()

    feedback.progressChanged.connect(on_progress)
    with pytest.raises(QgsProcessingException) as caught:
        run_cpp(name, parameters, feedback)
    assert any(0 < value < 100 for value in progress), f"no progress before the end: {progress}"
    one_line_error(caught, "cancel")
    assert files_in(out) == [], "outputs or partial files left behind"


PRE_CANCEL_CASES = {
    **CANCEL_CASES,
    "sample": lambda emb, big, out: (
        "sample",
        {"INPUT": big, "POINTS": point_layer("EPSG:4326", [(safe_patch_centres(emb)[0], ["p"])]), "OUTPUT": str(out / "s.gpkg")},
    ),
}


@pytest.mark.parametrize("case", list(PRE_CANCEL_CASES))
def test_cancelled_before_running_says_cancelled(embedding, big_embedding, tmp_path, case):
    """A run cancelled before it starts must say so, not blame the input (as geoembed:load does)."""
    out = tmp_path / "out"
    out.mkdir()
    name, parameters = PRE_CANCEL_CASES[case](embedding, big_embedding, out)
    feedback = QgsProcessingFeedback()
    feedback.cancel()
    with pytest.raises(QgsProcessingException) as caught:
        run_cpp(name, parameters, feedback)
    one_line_error(caught, "cancel")
    assert files_in(out) == []
