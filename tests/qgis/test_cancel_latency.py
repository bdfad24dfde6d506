"""Cancel during any algorithm stops it within about a second and leaves nothing in the output folder.

Each algorithm runs as QGIS runs it from the toolbox or the GeoEmbed panel: a QgsProcessingAlgRunnerTask in the
task manager. The input is a 1536 x 1536 raw AlphaEarth tile (64 int8 bands, south-up), big enough that no
algorithm is finished when Cancel is pressed.
"""

import time
from pathlib import Path

import pytest
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

from tests.fixtures.aef import TileSpec, write_tile

LATENCY_S = 1.5  # "about a second", with room for a loaded 2-core test machine
SIZE = 1536


@pytest.fixture(scope="module")
def big_tile(aef_specs, tmp_path_factory):
    """A raw AEF tile of SIZE x SIZE pixels next to the fixture's 31N tile, and its lon/lat-free facts."""
    base = next(s for s in aef_specs if s.year == 2024 and s.zone == "31N" and s.nodata_boxes)
    spec = TileSpec(2024, "31N", base.west, base.south, SIZE, SIZE, nodata_boxes=[(100, 200, 100, 300)])
    path = write_tile(tmp_path_factory.mktemp("big-tile") / "v1" / "annual", spec)
    return spec, Path(path)


@pytest.fixture(scope="module")
def labels(big_tile):
    """Two classes of points on the big tile, in its CRS."""
    spec, _ = big_tile
    layer = QgsVectorLayer(f"Point?crs=EPSG:{spec.epsg}&field=class:string", "labels", "memory")
    features = []
    for index in range(40):
        feature = QgsFeature(layer.fields())
        x = spec.west + 10 * (50 + 35 * index)
        y = spec.south + 10 * (SIZE - 50 - 30 * index)
        feature.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(x, y)))
        feature.setAttributes(["a" if index % 2 else "b"])
        features.append(feature)
    layer.dataProvider().addFeatures(features)
    QgsProject.instance().addMapLayer(layer, False)  # kept alive for the tasks; not shown
    yield layer
    QgsProject.instance().removeMapLayer(layer.id())


@pytest.fixture(scope="module")
def model(big_tile, labels, tmp_path_factory):
    import processing

    folder = tmp_path_factory.mktemp("model")
    small = {"INPUT": str(big_tile[1]), "TRAINING": labels, "FIELD": "class", "METHOD": "nearest_centroid"}
    processing.run("geoembed:train", {**small, "OUTPUT": str(folder / "c.tif"), "OUTPUT_MODEL": str(folder / "m.pkl")})
    return str(folder / "m.pkl")


def jobs(tile, labels, model, out):
    """Parameters of a long run of every algorithm that has one."""
    tile = str(tile)
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
        "resample": {"INPUT": tile, "MODE": "nearest", "RESOLUTION": 7, "OUTPUT": str(out / "r.tif")},
        "pca": {"INPUT": tile, "OUTPUT": str(out / "p.tif")},
        "cluster": {"INPUT": tile, "K": 4, "OUTPUT": str(out / "k.tif")},
        "change": {"INPUT": tile, "INPUT_2": tile, "OUTPUT": str(out / "d.tif"), "OUTPUT_MASK": str(out / "m.tif")},
        "intrinsicdim": {"INPUT": tile, "SAMPLE_SIZE": 20000, "OUTPUT": str(out / "i.csv")},
    }


ALGORITHMS = ["load", "similarity", "train", "classify", "resample", "pca", "cluster", "change", "intrinsicdim"]


def pump(condition, timeout):
    deadline = time.monotonic() + timeout
    while not condition():
        QCoreApplication.processEvents()
        time.sleep(0.002)
        if time.monotonic() > deadline:
            return False
    return True


@pytest.mark.parametrize("name", ALGORITHMS)
def test_cancel_stops_within_about_a_second_and_leaves_nothing(big_tile, labels, model, tmp_path, name):
    out = tmp_path / "out"
    out.mkdir()
    parameters = jobs(big_tile[1], labels, model, out)[name]
    algorithm = QgsApplication.processingRegistry().createAlgorithmById(f"geoembed:{name}")
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    feedback = QgsProcessingFeedback()
    finished = []
    task = QgsProcessingAlgRunnerTask(algorithm, parameters, context, feedback)
    task.executed.connect(lambda ok, results: finished.append((ok, time.monotonic())))
    QgsApplication.taskManager().addTask(task)
    started = pump(lambda: feedback.progress() > 0 or finished, 60)
    assert started and not finished, f"{name} finished before it could be cancelled: make the input bigger"
    time.sleep(0.2)  # well inside the work
    assert not finished, f"{name} finished too soon to test cancelling"
    cancelled_at = time.monotonic()
    feedback.cancel()
    assert pump(lambda: finished, 30), f"{name} did not stop within 30 s of Cancel"
    ok, ended_at = finished[0]
    assert not ok
    assert ended_at - cancelled_at < LATENCY_S, f"{name} took {ended_at - cancelled_at:.2f} s to stop"
    QCoreApplication.processEvents()
    assert list(out.iterdir()) == [], f"{name} left {[p.name for p in out.iterdir()]}"
