"""Every analysis algorithm takes the embedding rasters users already have as INPUT: one piece of an Earth Engine
export (Float64, masked pixels 0) and a plain Float32 A00..A63 GeoTIFF in EPSG:4326 with NaN nodata; also a raster
layer of the project read over http (/vsicurl/) and a VRT layer.

Expectations come from the files read with GDAL and from tests.fixtures.ee_export (class_at: the class of every
pixel), computed here with numpy, never with geoembed.analysis. Raster outputs are read back through QGIS's raster
provider where the other analysis tests do.
"""

import math
import os

import numpy as np
import pytest
from osgeo import gdal, osr
from pyproj import Transformer
from qgis.core import QgsRasterLayer

from tests.fixtures import ee_export as fx
from tests.support.range_server import RangeServer

from .test_analysis_algorithms import BANDS, brute_aggregate, point_layer, read_band, run
from .test_analysis_pca_cluster import ALL_PIXELS, qgis_bands, read_table, stretched, svd_pca

TOLERANCE = 1e-5
CLASS_NAMES = ["crop", "forest", "water"]  # fixture class k is named CLASS_NAMES[k] (already in natural order)


class Input:
    """One input file as the tests see it: values as Float32 (what GeoEmbed computes with), valid mask, grid."""

    def __init__(self, path):
        self.path = str(path)
        dataset = gdal.Open(self.path)
        stored = dataset.ReadAsArray().astype(np.float64)
        self.valid = np.isfinite(stored).all(axis=0) & (stored != 0).any(axis=0)
        self.values = np.where(self.valid, stored, 0.0).astype(np.float32)
        self.geotransform = dataset.GetGeoTransform()
        srs = osr.SpatialReference(wkt=dataset.GetProjection())
        srs.AutoIdentifyEPSG()
        self.epsg = int(srs.GetAuthorityCode(None))
        self.crs = f"EPSG:{self.epsg}"
        assert [dataset.GetRasterBand(i + 1).GetDescription() for i in range(dataset.RasterCount)] == BANDS
        rows, cols = np.meshgrid(np.arange(self.height), np.arange(self.width), indexing="ij")
        lon, lat = self.lonlat(*self.centre(rows, cols))
        self.classes = fx.class_at(lon, lat)  # the fixture class of every pixel

    x0 = property(lambda self: self.geotransform[0])
    y0 = property(lambda self: self.geotransform[3])
    res = property(lambda self: self.geotransform[1])
    height = property(lambda self: self.values.shape[1])
    width = property(lambda self: self.values.shape[2])

    def centre(self, row, col):
        return self.x0 + (np.asarray(col) + 0.5) * self.res, self.y0 - (np.asarray(row) + 0.5) * self.res

    def lonlat(self, x, y):
        if self.epsg == 4326:
            return x, y
        return Transformer.from_crs(self.crs, "EPSG:4326", always_xy=True).transform(x, y)

    def valid_pixels(self, count, margin=2, seed=0):
        """`count` valid pixels (row, col) spread over the raster, each with valid neighbours."""
        ok = self.valid.copy()
        for dr in range(-margin, margin + 1):
            for dc in range(-margin, margin + 1):
                ok &= np.roll(np.roll(self.valid, dr, axis=0), dc, axis=1)
        ok[:margin], ok[-margin:], ok[:, :margin], ok[:, -margin:] = False, False, False, False
        rows, cols = np.nonzero(ok)
        picks = np.random.default_rng(seed).choice(len(rows), count, replace=False)
        return [(int(rows[i]), int(cols[i])) for i in picks]

    def masked_pixel(self):
        rows, cols = np.nonzero(~self.valid)
        index = len(rows) // 2
        return int(rows[index]), int(cols[index])


@pytest.fixture(scope="module")
def ee(provider_ready, tmp_path_factory):
    return fx.build(tmp_path_factory.mktemp("ee-inputs"))


@pytest.fixture(scope="module")
def inputs(ee):
    """{kind: Input}: the export's north-west piece (256 x 256, Float64, zeros where masked) and the plain NaN GeoTIFF."""
    piece = Input(ee["pieces"]["float64-zeros"][0])
    plain = Input(ee["plain"])
    for item in (piece, plain):
        assert item.valid.any() and not item.valid.all(), "the set-up needs valid and masked pixels"
    return {"piece": piece, "plain": plain}


KINDS = ["piece", "plain"]


def points_at(emb, pixels):
    """A lon/lat point layer at the centres of pixels (row, col), attribute n = index."""
    rows = []
    for index, (row, col) in enumerate(pixels):
        lon, lat = emb.lonlat(*emb.centre(row, col))
        rows.append(((float(lon), float(lat)), [index]))
    return point_layer("EPSG:4326", rows, "n:integer")


# === sample ==========================================================================================================


@pytest.mark.parametrize("kind", KINDS)
def test_sample_returns_the_file_values_at_the_points(inputs, kind):
    emb = inputs[kind]
    pixels = emb.valid_pixels(8)
    masked = emb.masked_pixel()
    layer = points_at(emb, [*pixels, masked])
    out = run("sample", {"INPUT": emb.path, "POINTS": layer, "OUTPUT": "TEMPORARY_OUTPUT"})["OUTPUT"]
    assert out.fields().names() == ["n", *BANDS]
    seen = 0
    for feature in out.getFeatures():
        index = feature["n"]
        got = [feature[name] for name in BANDS]
        if index < len(pixels):
            row, col = pixels[index]
            np.testing.assert_allclose(np.array(got, dtype=np.float64), emb.values[:, row, col], rtol=0, atol=1e-7)
        else:
            assert all(value is None or value != value or str(value) == "NULL" for value in got), got[:3]
        seen += 1
    assert seen == len(pixels) + 1


# === similarity ======================================================================================================


@pytest.mark.parametrize("kind", KINDS)
def test_similarity_is_one_at_the_query_and_the_numpy_cosine_elsewhere(inputs, kind, tmp_path):
    emb = inputs[kind]
    row, col = emb.valid_pixels(1, seed=4)[0]
    output = tmp_path / "heat.tif"
    run("similarity", {"INPUT": emb.path, "QUERY": points_at(emb, [(row, col)]), "K": 0, "OUTPUT": str(output)})
    got, layer = read_band(output)
    assert (layer.width(), layer.height()) == (emb.width, emb.height)
    query = emb.values[:, row, col].astype(np.float64)
    query /= np.linalg.norm(query)
    values = emb.values.astype(np.float64)
    norms = np.linalg.norm(values, axis=0)
    expected = np.where(emb.valid, np.tensordot(query, values, axes=(0, 0)) / np.where(norms > 0, norms, 1.0), np.nan)
    assert got[row, col] == pytest.approx(1.0, abs=1e-6)
    assert np.array_equal(np.isnan(got), ~emb.valid), "masked (zero or NaN) pixels must be nodata"
    assert np.abs(got - expected)[emb.valid].max() < TOLERANCE


# === train and classify ==============================================================================================


def training_layer(emb):
    """Three valid pixels of every fixture class, labelled with its name."""
    rows = []
    for k in range(fx.CLASSES):
        candidates = [(r, c) for r, c in emb.valid_pixels(60, seed=k) if emb.classes[r, c] == k][:3]
        assert len(candidates) == 3, f"test design: too few pixels of class {k}"
        for row, col in candidates:
            lon, lat = emb.lonlat(*emb.centre(row, col))
            rows.append(((float(lon), float(lat)), [CLASS_NAMES[k]]))
    return point_layer("EPSG:4326", rows)


@pytest.fixture(scope="module")
def trained(inputs, tmp_path_factory):
    """{kind: (outputs)} of geoembed:train (nearest centroid) on each input."""
    runs = {}
    for kind, emb in inputs.items():
        folder = tmp_path_factory.mktemp(f"train-{kind}")
        outputs = {"OUTPUT": folder / "classes.tif", "OUTPUT_MODEL": folder / "model.npz"}
        parameters = {"INPUT": emb.path, "TRAINING": training_layer(emb), "FIELD": "cls", "METHOD": "nearest_centroid"}
        run("train", {**parameters, **{k: str(v) for k, v in outputs.items()}})
        runs[kind] = outputs
    return runs


def class_map(path):
    dataset = gdal.Open(str(path))
    band = dataset.GetRasterBand(1)
    assert band.GetRasterColorTable() is not None  # read first: GDAL 3.6 loads the .aux.xml categories after it
    assert band.GetCategoryNames() == ["nodata", *CLASS_NAMES]
    return dataset.ReadAsArray()


@pytest.mark.parametrize("kind", KINDS)
def test_train_reaches_the_fixture_classes_everywhere(inputs, trained, kind):
    emb = inputs[kind]
    classes = class_map(trained[kind]["OUTPUT"])
    assert classes.shape == (emb.height, emb.width)
    assert (classes[~emb.valid] == 0).all(), "masked pixels must be nodata (0)"
    np.testing.assert_array_equal(classes[emb.valid], emb.classes[emb.valid] + 1)


@pytest.mark.parametrize(("model_of", "kind"), [("piece", "piece"), ("piece", "plain"), ("plain", "piece")])
def test_classify_with_a_saved_model_reaches_the_fixture_classes(inputs, trained, tmp_path, model_of, kind):
    """A model trained on one input classifies the other too: same bands A00..A63, same fixture classes."""
    emb = inputs[kind]
    output = tmp_path / "classes.tif"
    run("classify", {"INPUT": emb.path, "MODEL": str(trained[model_of]["OUTPUT_MODEL"]), "OUTPUT": str(output)})
    classes = class_map(output)
    assert (classes[~emb.valid] == 0).all()
    np.testing.assert_array_equal(classes[emb.valid], emb.classes[emb.valid] + 1)


# === resample ========================================================================================================


@pytest.mark.parametrize("kind", KINDS)
def test_resample_aggregate_equals_the_numpy_sum_normalised(inputs, kind, tmp_path):
    emb = inputs[kind]
    output = tmp_path / "coarse.tif"
    run("resample", {"INPUT": emb.path, "RESOLUTION": 2 * emb.res, "OUTPUT": str(output)})  # MODE=auto: coarser
    dataset = gdal.Open(str(output))
    assert dataset.GetGeoTransform() == pytest.approx((emb.x0, 2 * emb.res, 0.0, emb.y0, 0.0, -2 * emb.res))
    width, height = math.ceil(emb.width / 2), math.ceil(emb.height / 2)
    assert (dataset.RasterXSize, dataset.RasterYSize) == (width, height)
    assert "aggregate" in dataset.GetMetadataItem("GEOEMBED_RESAMPLING")
    expected = brute_aggregate(emb, emb.x0, emb.y0, 2 * emb.res, 2 * emb.res, width, height)
    assert np.isnan(expected[0]).any(), "test design: some coarse pixels are all masked"
    for band in (1, 33, 64):
        got, _ = read_band(output, band)
        assert np.array_equal(np.isnan(got), np.isnan(expected[band - 1])), f"nodata differs in band {band}"
        ok = ~np.isnan(got)
        assert np.abs(got - expected[band - 1])[ok].max() < TOLERANCE


# === pca and cluster =================================================================================================


@pytest.mark.parametrize("kind", KINDS)
def test_pca_colours_equal_an_independent_pca(inputs, kind, tmp_path):
    emb = inputs[kind]
    output = tmp_path / "pca.tif"
    run("pca", {"INPUT": emb.path, "SAMPLE_SIZE": ALL_PIXELS, "OUTPUT": str(output)})
    vectors = emb.values[:, emb.valid].T
    mean, axes = svd_pca(vectors)
    projected = (vectors.astype(np.float64) - mean) @ axes.T
    lows, highs = np.percentile(projected, 2, axis=0), np.percentile(projected, 98, axis=0)
    expected = stretched(vectors, mean, axes, lows, highs)
    rgb, _ = qgis_bands(output)
    assert (rgb[:, ~emb.valid] == 0).all(), "masked pixels must be nodata (0)"
    got = rgb[:, emb.valid]
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1
    assert (got == expected).mean() > 0.999


@pytest.mark.parametrize("kind", KINDS)
def test_cluster_finds_the_fixture_classes(inputs, kind, tmp_path):
    emb = inputs[kind]
    outputs = {"OUTPUT": tmp_path / "clusters.tif", "OUTPUT_CENTROIDS": tmp_path / "centroids.gpkg"}
    run("cluster", {"INPUT": emb.path, "K": fx.CLASSES, "SEED": 3, **{k: str(v) for k, v in outputs.items()}})
    clusters, _ = qgis_bands(outputs["OUTPUT"])
    clusters = clusters[0]
    assert (clusters[~emb.valid] == 0).all()
    got, truth = clusters[emb.valid], emb.classes[emb.valid]
    pairs = {(int(c), int(k)) for c, k in zip(got, truth)}
    assert len(pairs) == fx.CLASSES and {c for c, _ in pairs} == {1, 2, 3}, f"clusters are not the classes: {pairs}"
    # and every pixel has the nearest centroid of its unit vector
    _, features = read_table(outputs["OUTPUT_CENTROIDS"])
    centroids = np.array([[f[name] for name in BANDS] for f in features], dtype=np.float64)
    vectors = emb.values[:, emb.valid].T.astype(np.float64)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    nearest = ((vectors[:, np.newaxis, :] - centroids[np.newaxis]) ** 2).sum(axis=2).argmin(axis=1) + 1
    np.testing.assert_array_equal(got, nearest)


# === change and compare ==============================================================================================


CHANGE_BOX = (20, 50, 30, 70)  # rows, cols of the "after" raster whose vectors are rotated (another direction)


def write_after(emb, path):
    """The input with CHANGE_BOX changed, written as the same kind of file (Float32 A00..A63, masked as in INPUT)."""
    source = gdal.Open(emb.path)
    stored = source.ReadAsArray()
    r0, r1, c0, c1 = CHANGE_BOX
    stored[:, r0:r1, c0:c1] = np.roll(stored[:, r0:r1, c0:c1], 17, axis=0)
    dataset = gdal.GetDriverByName("GTiff").Create(str(path), emb.width, emb.height, 64, gdal.GDT_Float32)
    dataset.SetGeoTransform(emb.geotransform)
    dataset.SetProjection(source.GetProjection())
    for index in range(64):
        band = dataset.GetRasterBand(index + 1)
        band.SetDescription(BANDS[index])
        band.WriteArray(stored[index].astype(np.float32))
    dataset = None
    return str(path)


@pytest.mark.parametrize("kind", KINDS)
def test_change_distances_and_mask(inputs, kind, tmp_path):
    emb = inputs[kind]
    after = Input(write_after(emb, tmp_path / "after.tif"))
    outputs = {"OUTPUT": tmp_path / "distance.tif", "OUTPUT_MASK": tmp_path / "mask.tif"}
    results = run(
        "change", {"INPUT": emb.path, "INPUT_2": after.path, "THRESHOLD": 0.5, **{k: str(v) for k, v in outputs.items()}}
    )
    a, b = emb.values.astype(np.float64), after.values.astype(np.float64)
    both = emb.valid & after.valid
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = (a * b).sum(axis=0) / (np.linalg.norm(a, axis=0) * np.linalg.norm(b, axis=0))
    expected = np.where(both, 1.0 - cos, np.nan)
    got, _ = read_band(outputs["OUTPUT"])
    assert np.array_equal(np.isnan(got), ~both), "masked pixels must be nodata"
    assert np.abs(got - expected)[both].max() < TOLERANCE
    box = np.zeros(both.shape, dtype=bool)
    r0, r1, c0, c1 = CHANGE_BOX
    box[r0:r1, c0:c1] = True
    assert results["CHANGED_PIXELS"] == int((box & both).sum()) == int((expected[both] > 0.5).sum())
    assert results["VALID_PIXELS"] == int(both.sum())


def write_noise(emb, path):
    """16 random bands on INPUT's grid (a 'product' that knows nothing of the classes), as a plain Float32 raster."""
    values = np.random.default_rng(5).normal(size=(16, emb.height, emb.width)).astype(np.float32)
    dataset = gdal.GetDriverByName("GTiff").Create(str(path), emb.width, emb.height, 16, gdal.GDT_Float32)
    dataset.SetGeoTransform(emb.geotransform)
    dataset.SetProjection(gdal.Open(emb.path).GetProjection())
    for index in range(16):
        dataset.GetRasterBand(index + 1).WriteArray(values[index])
    dataset = None
    return str(path)


@pytest.mark.parametrize("kind", KINDS)
def test_compare_prefers_the_export_to_noise(inputs, kind, tmp_path):
    emb = inputs[kind]
    pixels = emb.valid_pixels(90, seed=9)
    rows = []
    for row, col in pixels:
        lon, lat = emb.lonlat(*emb.centre(row, col))
        rows.append(((float(lon), float(lat)), [CLASS_NAMES[emb.classes[row, col]]]))
    parameters = {
        "INPUT": emb.path,
        "INPUT_2": write_noise(emb, tmp_path / "noise.tif"),
        "TRAINING": point_layer("EPSG:4326", rows),
        "FIELD": "cls",
        "METHOD": "nearest_centroid",
        "OUTPUT": str(tmp_path / "table.csv"),
    }
    results = run("compare", parameters)
    assert results["BEST"] == "INPUT"
    assert results["ACCURACY"] == pytest.approx(1.0) and results["ACCURACY_2"] < 0.7
    assert results["SAMPLES"] == len(pixels)


# === project layers: over http and a VRT =============================================================================


def test_a_project_layer_read_over_http_is_sampled_from_its_url(inputs, project):
    emb = inputs["piece"]
    pixels = emb.valid_pixels(4, seed=11)
    with RangeServer(os.path.dirname(emb.path)) as server:
        layer = QgsRasterLayer(f"/vsicurl/{server.url}/{os.path.basename(emb.path)}", "remote piece", "gdal")
        assert layer.isValid(), layer.error().message()
        project.addMapLayer(layer)
        # the layer's source is '/vsicurl/http://...': INPUT must become the URL again (the loaders read URLs)
        out = run("sample", {"INPUT": layer.id(), "POINTS": points_at(emb, pixels), "OUTPUT": "TEMPORARY_OUTPUT"})["OUTPUT"]
    for feature in out.getFeatures():
        row, col = pixels[feature["n"]]
        got = np.array([feature[name] for name in BANDS], dtype=np.float64)
        np.testing.assert_allclose(got, emb.values[:, row, col], rtol=0, atol=1e-7)


def test_a_vrt_layer_is_read_from_its_path(ee, project):
    layer = QgsRasterLayer(str(ee["generic"]["vrt"]), "vrt", "gdal")
    assert layer.isValid()
    project.addMapLayer(layer)
    x0, res, _, y0, _, _ = ee["generic"]["geotransform"]
    to_lonlat = Transformer.from_crs(fx.CRS, "EPSG:4326", always_xy=True)
    cells = [(5, 7), (60, 90), (125, 130)]
    rows = []
    for index, (row, col) in enumerate(cells):
        lon, lat = to_lonlat.transform(x0 + (col + 0.5) * res, y0 - (row + 0.5) * res)
        rows.append(((float(lon), float(lat)), [index]))
    points = point_layer("EPSG:4326", rows, "n:integer")
    out = run("sample", {"INPUT": layer.id(), "POINTS": points, "OUTPUT": "TEMPORARY_OUTPUT"})
    stored = fx.generic_int16()
    names = list(fx.GENERIC_NAMES)
    assert out["OUTPUT"].fields().names() == ["n", *names]
    for feature in out["OUTPUT"].getFeatures():
        row, col = cells[feature["n"]]
        assert [feature[name] for name in names] == stored[:, row, col].astype(float).tolist()
