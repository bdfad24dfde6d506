"""geoembed:detect through Processing: its polygons, burnt back onto the raster's grid, are exactly the connected
components of the thresholded raster (or of the chosen classes), labelled here with scipy.ndimage.label on the whole
array; their fields are checked against numpy sums per component; bad inputs are refused in one line.

The score rasters and class maps are written here with GDAL from arrays the tests know.
"""

import numpy as np
import pytest
from osgeo import gdal, ogr, osr
from qgis.core import (
    QgsCategorizedSymbolRenderer,
    QgsGraduatedSymbolRenderer,
    QgsProcessingOutputLayerDefinition,
    QgsVectorLayer,
)
from scipy import ndimage

from .refusals import assert_refused
from .test_analysis_algorithms import RecordingFeedback, run

NODATA = -9999.0
EPSG = 32631
X0, Y0, RES = 600_000.0, 4_990_000.0, 10.0
STRUCTURES = {4: ndimage.generate_binary_structure(2, 1), 8: ndimage.generate_binary_structure(2, 2)}


def write_single_band(path, values, data_type=gdal.GDT_Float32, nodata=NODATA, names=None, bands=1, epsg=EPSG, res=RES):
    dataset = gdal.GetDriverByName("GTiff").Create(str(path), values.shape[1], values.shape[0], bands, data_type)
    x0, y0 = (X0, Y0) if epsg == EPSG else (5.0, 60.0)
    dataset.SetGeoTransform((x0, res, 0.0, y0, 0.0, -res))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    dataset.SetProjection(srs.ExportToWkt())
    dataset.SetMetadata({"GEOEMBED_PRODUCT": "aef"})
    for index in range(bands):
        band = dataset.GetRasterBand(index + 1)
        band.SetNoDataValue(nodata)
        band.WriteArray(values)
        if names:
            band.SetRasterCategoryNames(names)
    dataset = None
    return str(path)


@pytest.fixture(scope="module")
def scores(tmp_path_factory):
    """A Float32 'heatmap' of blobs (ring and U shapes among them) with a nodata strip, 700 x 600 pixels so that the
    512-pixel blocks of detect split objects across block edges."""
    rng = np.random.default_rng(5)
    values = ndimage.gaussian_filter(rng.normal(size=(600, 700)), 4)
    values = (values / np.abs(values).max()).astype(np.float32)
    values[100:140, 500:540] = 0.95  # a ring with a hole straddling the column block edge at 512
    values[110:130, 510:530] = 0.0
    values[490:530, 300] = 0.9  # a U across the row block edge at 512
    values[490:530, 320] = 0.9
    values[529, 300:321] = 0.9
    for k in range(6):  # a diagonal chain through the corner of four blocks
        values[509 + k, 509 + k] = 0.97
    valid = np.ones(values.shape, bool)
    valid[:, 0:15] = False
    values[~valid] = NODATA
    path = write_single_band(tmp_path_factory.mktemp("detect-scores") / "heatmap.tif", values)
    return path, values, valid


def components(mask, connectivity):
    labels, count = ndimage.label(mask, structure=STRUCTURES[connectivity])
    return labels, count


def read_objects(path):
    layer = QgsVectorLayer(str(path), "objects", "ogr")
    assert layer.isValid(), f"QGIS cannot open {path}"
    return layer, list(layer.getFeatures())


def burnt(path, shape, geotransform):
    """The output's polygons rasterised onto the input grid (pixel centres), with their rank."""
    source = ogr.Open(str(path))
    target = gdal.GetDriverByName("MEM").Create("", shape[1], shape[0], 1, gdal.GDT_UInt32)
    target.SetGeoTransform(geotransform)
    gdal.RasterizeLayer(target, [1], source.GetLayer(0), options=["ATTRIBUTE=rank"])
    return target.ReadAsArray()


def assert_components(ranks, mask, connectivity):
    """Every rank covers exactly one brute-force component and every component has a rank."""
    labels, count = components(mask, connectivity)
    assert int(ranks.max()) == count
    assert np.array_equal(ranks > 0, mask)
    pairs = np.unique(np.stack([labels[mask], ranks[mask]]), axis=1)
    assert pairs.shape[1] == count, "one rank per component, one component per rank"
    return labels


@pytest.mark.parametrize("connectivity", [4, 8])
def test_detect_polygons_are_the_components_of_the_thresholded_raster(scores, connectivity, tmp_path):
    path, values, valid = scores
    output = tmp_path / "objects.gpkg"
    feedback = RecordingFeedback()
    results = run("detect", {"INPUT": path, "THRESHOLD": 0.6, "CONNECTIVITY": connectivity, "OUTPUT": str(output)}, feedback)
    layer, features = read_objects(output)
    assert layer.crs().authid() == f"EPSG:{EPSG}"
    assert layer.fields().names()[-6:] == ["rank", "pixels", "area_m2", "area_ha", "max_score", "mean_score"]
    mask = valid & (values >= np.float32(0.6))
    ranks = burnt(output, values.shape, (X0, RES, 0.0, Y0, 0.0, -RES))
    labels = assert_components(ranks, mask, connectivity)
    assert results["OBJECTS"] == len(features) == int(labels.max())
    assert [f["rank"] for f in features] == list(range(1, len(features) + 1)), "features are written in rank order"
    previous = None
    for feature in features:
        pixels = ranks == feature["rank"]
        assert feature["pixels"] == int(pixels.sum())
        assert feature["area_m2"] == pytest.approx(100.0 * pixels.sum())
        assert feature["area_ha"] == pytest.approx(feature["area_m2"] / 1e4)
        assert feature["max_score"] == pytest.approx(float(values[pixels].max()))
        assert feature["mean_score"] == pytest.approx(float(values[pixels].astype(np.float64).mean()))
        geometry = feature.geometry()
        assert geometry.isGeosValid()
        assert geometry.area() == pytest.approx(feature["area_m2"])
        key = (-feature["max_score"], -feature["area_m2"])
        assert previous is None or previous <= key, "rank 1 = highest score, ties by area"
        previous = key
    ring = ranks[100, 500]
    assert (ranks[100:140, 500:540][values[100:140, 500:540] >= 0.6] == ring).all()
    assert ranks[120, 520] == 0, "the ring keeps its hole"
    assert ranks[490, 300] == ranks[490, 320] != 0, "the U's arms are one object across the block edge"
    chain = {int(ranks[509 + k, 509 + k]) for k in range(6)}
    assert len(chain) == (1 if connectivity == 8 else 6)
    assert any("object(s)" in message for message in feedback.infos)


def test_detect_min_area_and_max_objects(scores, tmp_path):
    path, values, valid = scores
    labels, count = components(valid & (values >= np.float32(0.6)), 8)
    sizes = np.bincount(labels.ravel())[1:]
    big = int((sizes * 100.0 >= 2000.0).sum())
    assert 0 < big < count
    output = tmp_path / "big.gpkg"
    results = run("detect", {"INPUT": path, "THRESHOLD": 0.6, "MIN_AREA": 2000, "OUTPUT": str(output)})
    _, features = read_objects(output)
    assert results["OBJECTS"] == len(features) == big
    assert all(f["area_m2"] >= 2000 for f in features)
    output = tmp_path / "best.gpkg"
    results = run("detect", {"INPUT": path, "THRESHOLD": 0.6, "MIN_AREA": 2000, "MAX_OBJECTS": 3, "OUTPUT": str(output)})
    _, best = read_objects(output)
    assert [f["rank"] for f in best] == [1, 2, 3]
    assert [f["pixels"] for f in best] == [f["pixels"] for f in features[:3]]


@pytest.fixture(scope="module")
def class_map(tmp_path_factory):
    """A Byte class map (0 = nodata) with category names, like geoembed:train writes."""
    rng = np.random.default_rng(9)
    values = ndimage.median_filter(rng.integers(1, 5, (300, 260)), 7).astype(np.uint8)
    values[:20, :] = 0
    names = ["nodata", "water", "forest", "crops", "town"]
    path = write_single_band(tmp_path_factory.mktemp("detect-classes") / "classes.tif", values, gdal.GDT_Byte, 0, names)
    return path, values


def test_detect_classes_by_name_and_value(class_map, tmp_path):
    path, values = class_map
    output = tmp_path / "objects.gpkg"
    run("detect", {"INPUT": path, "CLASSES": "water, 3", "CONNECTIVITY": 4, "OUTPUT": str(output)})
    layer, features = read_objects(output)
    assert layer.fields().names()[-6:] == ["rank", "pixels", "area_m2", "area_ha", "class", "class_name"]
    ranks = burnt(output, values.shape, (X0, RES, 0.0, Y0, 0.0, -RES))
    for klass, name in ((1, "water"), (3, "crops")):
        mine = [f for f in features if f["class"] == klass]
        assert mine and all(f["class_name"] == name for f in mine)
        mask = np.isin(ranks, [f["rank"] for f in mine])
        labels, count = components(values == klass, 4)
        assert np.array_equal(mask, values == klass)
        assert len(mine) == count
        assert np.unique(np.stack([labels[mask], ranks[mask]]), axis=1).shape[1] == count
    areas = [f["area_m2"] for f in features]
    assert areas == sorted(areas, reverse=True), "class objects are ranked by area"


def test_detect_on_a_geographic_grid_gives_ellipsoidal_areas(tmp_path):
    from pyproj import Geod

    values = np.zeros((8, 6), np.float32)
    values[1:7, 2:4] = 1.0
    path = write_single_band(tmp_path / "lonlat.tif", values, epsg=4326, res=0.01)
    output = tmp_path / "objects.gpkg"
    run("detect", {"INPUT": path, "THRESHOLD": 0.5, "OUTPUT": str(output)})
    _, features = read_objects(output)
    geod = Geod(ellps="WGS84")
    lons, lats = [5.02, 5.04, 5.04, 5.02], [60.0 - 0.07, 60.0 - 0.07, 60.0 - 0.01, 60.0 - 0.01]
    expected = abs(geod.polygon_area_perimeter(lons, lats)[0])
    assert len(features) == 1
    assert features[0]["area_m2"] == pytest.approx(expected, rel=1e-6)


def test_detect_styles_the_loaded_layer(scores, class_map, project, tmp_path):
    from processing.gui.Postprocessing import handleAlgorithmResults
    from qgis.core import QgsApplication, QgsProcessingAlgorithm, QgsProcessingContext, QgsProcessingFeedback

    for parameters, renderer_type in (
        ({"INPUT": scores[0], "THRESHOLD": 0.6}, QgsGraduatedSymbolRenderer),
        ({"INPUT": class_map[0], "CLASSES": "2,4"}, QgsCategorizedSymbolRenderer),
    ):
        before = set(project.mapLayers())
        output = str(tmp_path / f"{renderer_type.__name__}.gpkg")
        context = QgsProcessingContext()
        context.setProject(project)
        feedback = QgsProcessingFeedback()
        algorithm = QgsApplication.processingRegistry().createAlgorithmById("geoembed:detect")
        parameters = {**parameters, "OUTPUT": QgsProcessingOutputLayerDefinition(output, project)}
        results, ok = QgsProcessingAlgorithm.run(algorithm, parameters, context, feedback, {}, False)
        assert ok
        assert handleAlgorithmResults(algorithm, context, feedback)
        layers = [project.mapLayer(i) for i in set(project.mapLayers()) - before]
        assert len(layers) == 1
        renderer = layers[0].renderer()
        assert isinstance(renderer, renderer_type)
        if renderer_type is QgsCategorizedSymbolRenderer:
            assert [c.label() for c in renderer.categories()] == ["forest", "town"]
        else:
            assert len(renderer.ranges()) == 5


# --- refusals -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def embeddings(tmp_path_factory):
    values = np.random.default_rng(1).normal(size=(20, 30)).astype(np.float32)
    return write_single_band(tmp_path_factory.mktemp("detect-embeddings") / "embeddings.tif", values, bands=8)


def test_detect_refusals(scores, class_map, embeddings, tmp_path):
    cases = [
        ("embeddings", {"INPUT": embeddings, "THRESHOLD": 0.5}, ["8 bands", "geoembed:similarity"]),
        ("embeddings with classes", {"INPUT": embeddings, "CLASSES": "1"}, ["8 bands", "class map"]),
        ("threshold above the max", {"INPUT": scores[0], "THRESHOLD": 1.5}, ["THRESHOLD 1.5", "highest value", "lower"]),
        ("no threshold nor classes", {"INPUT": scores[0]}, ["THRESHOLD", "CLASSES"]),
        ("unknown class value", {"INPUT": class_map[0], "CLASSES": "2,7"}, ["CLASSES 7", "not a class", "2 forest"]),
        ("unknown class name", {"INPUT": class_map[0], "CLASSES": "wheat"}, ["'wheat'", "not a class", "1 water"]),
        ("nodata class", {"INPUT": class_map[0], "CLASSES": "0"}, ["nodata"]),
        ("connectivity 6", {"INPUT": scores[0], "THRESHOLD": 0.5, "CONNECTIVITY": 6}, ["CONNECTIVITY", "4", "8"]),
        ("a folder", {"INPUT": str(tmp_path), "THRESHOLD": 0.5}, ["folder", "geoembed:similarity"]),
    ]
    for index, (case, parameters, words) in enumerate(cases):
        out = tmp_path / f"out{index}"
        out.mkdir()
        assert_refused("detect", {**parameters, "OUTPUT": str(out / "objects.gpkg")}, words, out, case)


def test_detect_class_absent_from_a_map_without_names_is_refused(tmp_path):
    values = np.array([[1, 1, 0], [2, 0, 2]], np.uint8)
    path = write_single_band(tmp_path / "plain.tif", values, gdal.GDT_Byte, 0)
    out = tmp_path / "out"
    out.mkdir()
    assert_refused("detect", {"INPUT": path, "CLASSES": "5", "OUTPUT": str(out / "o.gpkg")}, ["CLASSES 5", "1, 2"], out)


def test_detect_min_area_above_every_object_gives_an_empty_layer_with_a_warning(scores, tmp_path):
    feedback = RecordingFeedback()
    output = tmp_path / "none.gpkg"
    results = run("detect", {"INPUT": scores[0], "THRESHOLD": 0.6, "MIN_AREA": 1e9, "OUTPUT": str(output)}, feedback)
    assert results["OBJECTS"] == 0
    assert read_objects(output)[1] == []
    assert any("MIN_AREA" in message for message in feedback.warnings)
