"""Cancelling algorithms mid-run as QGIS runs them, shared by tests/qgis/test_cancel_latency.py and bench/bench_cancel.py.

Each algorithm runs as it does from the toolbox or the GeoEmbed panel: a QgsProcessingAlgRunnerTask in the task
manager, cancelled through its feedback. The input is a raw AlphaEarth tile of SIZE x SIZE pixels (64 int8 bands,
south-up), big enough that no algorithm is finished when Cancel is pressed; beside it the same tile a year earlier
(trajectory), a score raster and two class maps of twice its side (detect and transitions read one band: they need
more pixels to be still running when Cancel comes) and one polygon covering the tile (zonal).
"""

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from osgeo import gdal, ogr, osr
from qgis.core import (
    QgsApplication,
    QgsFeature,
    QgsGeometry,
    QgsPointXY,
    QgsProcessingAlgRunnerTask,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProject,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QCoreApplication

from tests.fixtures.aef import TileSpec, sample_specs, write_tile

SIZE = 1536
SINGLE_BAND_SIZE = 2 * SIZE
ALGORITHMS = [
    "load",
    "zonal",
    "similarity",
    "detect",
    "train",
    "classify",
    "regress",
    "resample",
    "pca",
    "cluster",
    "change",
    "trajectory",
    "transitions",
    "intrinsicdim",
]
EARLIER_YEAR = 2023


def write_big_tile(folder, size=SIZE):
    """(spec, path) of a raw AEF tile of size x size pixels placed like the fixture mirror's 2024 31N tile, with
    its companions beside it (earlier_tile, score_raster, zones_file)."""
    base = next(s for s in sample_specs() if s.year == 2024 and s.zone == "31N" and s.nodata_boxes)
    spec = TileSpec(2024, "31N", base.west, base.south, size, size, nodata_boxes=[(100, 200, 100, 300)])
    tile = Path(write_tile(Path(folder) / "v1" / "annual", spec))
    earlier = TileSpec(EARLIER_YEAR, spec.zone, spec.west, spec.south, size, size, nodata_boxes=spec.nodata_boxes)
    write_tile(Path(folder) / "v1" / "annual", earlier)
    _write_score_raster(spec, score_raster(tile))
    for shift, path in enumerate(class_maps(tile)):
        _write_class_map(spec, path, shift)
    _write_zones(spec, zones_file(tile))
    return spec, tile


def earlier_tile(tile):
    """The tile of EARLIER_YEAR at the same place (written by write_big_tile)."""
    annual = Path(tile).parents[2]
    return next((annual / str(EARLIER_YEAR)).rglob("*.tiff"))


def score_raster(tile):
    return Path(tile).parents[3] / "score.tif"


def class_maps(tile):
    """(before, after) class maps (see _north_up)."""
    return Path(tile).parents[3] / "classes_before.tif", Path(tile).parents[3] / "classes_after.tif"


def zones_file(tile):
    return Path(tile).parents[3] / "zones.gpkg"


def _write_score_raster(spec, path):
    """A north-up Float32 score raster: blobs of scores around 0.5 (many objects for detect)."""
    rows, cols = np.mgrid[0:SINGLE_BAND_SIZE, 0:SINGLE_BAND_SIZE]
    scores = (0.5 + 0.25 * np.sin(rows / 37.0) + 0.25 * np.cos(cols / 53.0)).astype(np.float32)
    dataset = _north_up(spec, path, gdal.GDT_Float32)
    dataset.GetRasterBand(1).WriteArray(scores)
    dataset = None


def _write_class_map(spec, path, shift):
    """Byte classes 1..4 in stripes (0 = nodata), named as geoembed:classify names them; `shift` moves the stripes."""
    rows, cols = np.mgrid[0:SINGLE_BAND_SIZE, 0:SINGLE_BAND_SIZE]
    classes = (1 + ((rows + cols + 97 * shift) // 211) % 4).astype(np.uint8)
    dataset = _north_up(spec, path, gdal.GDT_Byte)
    dataset.SetMetadataItem("GEOEMBED_CLASSES", "a|b|c|d")
    band = dataset.GetRasterBand(1)
    band.SetNoDataValue(0)
    band.WriteArray(classes)
    dataset = None


def _north_up(spec, path, data_type):
    """A one-band north-up GeoTIFF of SINGLE_BAND_SIZE pixels a side, its north-west corner at the tile's."""
    size = SINGLE_BAND_SIZE
    dataset = gdal.GetDriverByName("GTiff").Create(str(path), size, size, 1, data_type, ["TILED=YES"])
    dataset.SetGeoTransform((spec.west, 10.0, 0.0, spec.south + 10.0 * spec.height, 0.0, -10.0))
    dataset.SetProjection(_srs(spec).ExportToWkt())
    return dataset


def _write_zones(spec, path):
    """One polygon covering the whole tile, in its CRS."""
    source = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    layer = source.CreateLayer("zones", _srs(spec), ogr.wkbPolygon)
    layer.CreateField(ogr.FieldDefn("name", ogr.OFTString))
    west, south, east, north = spec.bounds
    feature = ogr.Feature(layer.GetLayerDefn())
    feature.SetField("name", "whole tile")
    feature.SetGeometry(
        ogr.CreateGeometryFromWkt(f"POLYGON(({west} {south},{east} {south},{east} {north},{west} {north},{west} {south}))")
    )
    layer.CreateFeature(feature)
    source = None


def _srs(spec):
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(spec.epsg)
    return srs


def label_layer(spec):
    """Two classes of 40 points spread over the tile, in its CRS, as a memory layer (add it to a project to keep it);
    `value` is a number for regress."""
    layer = QgsVectorLayer(f"Point?crs=EPSG:{spec.epsg}&field=class:string&field=value:double", "labels", "memory")
    features = []
    for index in range(40):
        feature = QgsFeature(layer.fields())
        x = spec.west + 10 * (spec.width * (50 + 35 * index) // SIZE)
        y = spec.south + 10 * (spec.height * (SIZE - 50 - 30 * index) // SIZE)
        feature.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(x, y)))
        feature.setAttributes(["a" if index % 2 else "b", float(index % 7)])
        features.append(feature)
    layer.dataProvider().addFeatures(features)
    return layer


def train_model(tile, labels, folder):
    """Path of a nearest-centroid model trained on the tile, for classify."""
    import processing

    folder = Path(folder)
    training = {"INPUT": str(tile), "TRAINING": labels, "FIELD": "class", "METHOD": "nearest_centroid"}
    outputs = {"OUTPUT": str(folder / "c.tif"), "OUTPUT_MODEL": str(folder / "model.npz")}
    return processing.run("geoembed:train", {**training, **outputs})["OUTPUT_MODEL"]


def jobs(tile, labels, model, out):
    """Parameters of a long run of every algorithm in ALGORITHMS, writing into the folder `out`."""
    tile, out = str(tile), Path(out)
    return {
        "load": {"PRODUCT": "aef", "SOURCE": tile, "OUTPUT": str(out / "e.tif")},
        "similarity": {"INPUT": tile, "QUERY": labels, "K": 10, "OUTPUT": str(out / "h.tif")},
        "train": {
            "INPUT": tile,
            "TRAINING": labels,
            "FIELD": "class",
            "METHOD": "nearest_centroid",
            "OUTPUT": str(out / "c.tif"),
        },
        "classify": {"INPUT": tile, "MODEL": model, "OUTPUT": str(out / "c.tif")},
        "regress": {
            "INPUT": tile,
            "TRAINING": labels,
            "FIELD": "value",
            "METHOD": "ridge",
            "OUTPUT": str(out / "v.tif"),
        },
        "zonal": {"INPUT": tile, "ZONES": str(zones_file(tile)), "OUTPUT": str(out / "z.gpkg")},
        "detect": {"INPUT": str(score_raster(tile)), "THRESHOLD": 0.6, "OUTPUT": str(out / "o.gpkg")},
        "transitions": {
            "INPUT": str(class_maps(tile)[0]),
            "INPUT_2": str(class_maps(tile)[1]),
            "OUTPUT": str(out / "t.tif"),
        },
        "trajectory": {
            "INPUT": [str(earlier_tile(tile)), tile],
            "OUTPUT": str(out / "t.tif"),
            "OUTPUT_ANOMALY": str(out / "a.tif"),
        },
        "resample": {"INPUT": tile, "MODE": "nearest", "RESOLUTION": 7, "OUTPUT": str(out / "r.tif")},
        "pca": {"INPUT": tile, "OUTPUT": str(out / "p.tif")},
        "cluster": {"INPUT": tile, "K": 4, "OUTPUT": str(out / "k.tif")},
        "change": {"INPUT": tile, "INPUT_2": tile, "OUTPUT": str(out / "d.tif"), "OUTPUT_MASK": str(out / "m.tif")},
        "intrinsicdim": {"INPUT": tile, "SAMPLE_SIZE": 20000, "OUTPUT": str(out / "i.csv")},
    }


def pump(condition, timeout):
    """Process Qt events until condition() holds (True) or timeout seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        QCoreApplication.processEvents()
        time.sleep(0.002)
        if time.monotonic() > deadline:
            return False
    return True


@dataclass
class TaskRun:
    """What happened to one algorithm run in a task. Times in seconds, progress in percent."""

    ok: bool | None = None  # the task's result; None: it had not ended when waiting stopped
    finished_early: bool = False  # ended before Cancel could be pressed
    progress_at_cancel: float | None = None
    progress_at_end: float | None = None
    latency_s: float | None = None  # from Cancel to the task's end
    length_s: float | None = None  # from start to end, uncancelled runs only


def run_task(name, parameters, cancel_after=0.2, wait=60.0):
    """Run geoembed:name in the task manager; once it reports progress, wait cancel_after seconds and cancel it
    (cancel_after=None: let it finish). Waits up to `wait` seconds for each step."""
    algorithm = QgsApplication.processingRegistry().createAlgorithmById(f"geoembed:{name}")
    context = QgsProcessingContext()  # outlives the task: it is only deleted on return
    context.setProject(QgsProject.instance())
    feedback = QgsProcessingFeedback()
    ended = []
    task = QgsProcessingAlgRunnerTask(algorithm, parameters, context, feedback)
    task.executed.connect(lambda ok, results: ended.append((ok, time.monotonic())))
    run = TaskRun()
    started_at = time.monotonic()
    QgsApplication.taskManager().addTask(task)
    if cancel_after is None:
        if pump(lambda: ended, wait):
            run.ok, run.length_s = ended[0][0], ended[0][1] - started_at
        run.progress_at_end = feedback.progress()
        return run
    if not pump(lambda: feedback.progress() > 0 or ended, wait) or ended:
        run.finished_early = True
        return run
    time.sleep(cancel_after)  # well inside the work
    if ended:
        run.finished_early = True
        return run
    cancelled_at = time.monotonic()
    feedback.cancel()
    run.progress_at_cancel = feedback.progress()  # read after cancel(): any later progress was made after Cancel
    if pump(lambda: ended, wait):
        run.ok, run.latency_s = ended[0][0], ended[0][1] - cancelled_at
    run.progress_at_end = feedback.progress()
    QCoreApplication.processEvents()
    return run
