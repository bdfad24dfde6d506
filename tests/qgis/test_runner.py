"""The panel's runner (ui/runner.py): algorithms run as tasks, their outputs added to the project as the Processing
toolbox adds them, and the objects a task refers to kept alive exactly as long as the task.

What Processing's own result handling (processing/gui/Postprocessing.py of the running QGIS) does with the same run
is the expectation: names, renderers, styles from Processing's options, results group, place in the layer tree.
"""

import gc
import threading
import time
import weakref

import pytest
from osgeo import gdal
from qgis.core import (
    Qgis,
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsGeometry,
    QgsLayerTreeLayer,
    QgsMultiBandColorRenderer,
    QgsPointXY,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingParameterRasterDestination,
    QgsProcessingProvider,
    QgsProject,
    QgsRasterLayer,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QCoreApplication, QEvent
from qgis.PyQt.QtGui import QColor

from geoembed.ui import runner
from geoembed.ui.runner import AlgorithmRun, load_into_project

from .helpers import settle

TEST_PROVIDER = "geoembedtest"


# --- running and waiting --------------------------------------------------------------------------


def wait_for(run, timeout=120.0):
    """Let Qt run the task and deliver its signals until the run is over."""
    deadline = time.monotonic() + timeout
    while not run.done:
        QCoreApplication.processEvents()
        time.sleep(0.005)
        assert time.monotonic() < deadline, f"{run.algorithm.id()} did not finish in {timeout} s"
    return run


class MessageBar:
    """Records what the runner tells the user."""

    def __init__(self):
        self.messages = []

    def pushMessage(self, title, text, level, duration):  # noqa: N802 - QGIS API
        self.messages.append((text, level))


def panel_run(algorithm_id, parameters, message_bar=None):
    run = AlgorithmRun(algorithm_id, parameters, message_bar)
    return wait_for(run.start())


def processing_run(algorithm_id, parameters, monkeypatch):
    """The same run the toolbox's way: the algorithm, then Processing's own handleAlgorithmResults (without iface,
    which pytest-qgis fakes with mocks that QGIS 3.44's C++ calls refuse)."""
    from processing.gui import Postprocessing

    monkeypatch.setattr(Postprocessing, "iface", None, raising=False)
    algorithm = QgsApplication.processingRegistry().createAlgorithmById(algorithm_id)
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    feedback = QgsProcessingFeedback()
    ok, problem = algorithm.checkParameterValues(parameters, context)
    assert ok, problem
    results, ok = QgsProcessingAlgorithm.run(algorithm, parameters, context, feedback, {}, False)
    assert ok
    assert Postprocessing.handleAlgorithmResults(algorithm, context, feedback=feedback, parameters=parameters)
    return results


# --- what a loaded layer looks like ------------------------------------------------------------------


def tree_place(layer):
    """(group names from the root, index among its siblings) of the layer in the project's layer tree."""
    node = QgsProject.instance().layerTreeRoot().findLayer(layer.id())
    assert isinstance(node, QgsLayerTreeLayer), f"{layer.name()} is not in the layer tree"
    groups, parent = [], node.parent()
    while parent is not None and parent.parent() is not None:
        groups.insert(0, parent.name())
        parent = parent.parent()
    return tuple(groups), node.parent().children().index(node)


def appearance(layer):
    """Everything of a loaded layer that the panel must do as the toolbox does."""
    facts = {"name": layer.name(), "valid": layer.isValid(), "place": tree_place(layer)}
    renderer = layer.renderer()
    facts["renderer"] = type(renderer).__name__
    if isinstance(renderer, QgsMultiBandColorRenderer):
        enhancements = [
            renderer.redContrastEnhancement(),
            renderer.greenContrastEnhancement(),
            renderer.blueContrastEnhancement(),
        ]
        facts["bands"] = (renderer.redBand(), renderer.greenBand(), renderer.blueBand())
        facts["stretch"] = [(e.minimumValue(), e.maximumValue()) for e in enhancements]
    if hasattr(layer, "brightnessFilter"):
        facts["brightness"] = layer.brightnessFilter().brightness()
    if isinstance(layer, QgsVectorLayer):
        facts["colour"] = renderer.symbol().color().name()
        node = QgsProject.instance().layerTreeRoot().findLayer(layer.id())
        facts["feature count shown"] = bool(node.customProperty("showFeatureCount"))
    return facts


def only_new_layer(before):
    new = [layer for layer_id, layer in QgsProject.instance().mapLayers().items() if layer_id not in before]
    assert len(new) == 1, [layer.name() for layer in new]
    return new[0]


def panel_and_processing(algorithm_id, parameters_for, monkeypatch, tmp_path):
    """appearance() of the one layer the panel adds, then of the one Processing's handling adds (each in a project
    holding the same other layers)."""
    project = QgsProject.instance()
    found = []
    for way in ("panel", "processing"):
        before = set(project.mapLayers())
        (tmp_path / way).mkdir()
        parameters = parameters_for(tmp_path / way)
        if way == "panel":
            run = panel_run(algorithm_id, parameters)
            assert run.ok, run.message
        else:
            processing_run(algorithm_id, parameters, monkeypatch)
        layer = only_new_layer(before)
        found.append(appearance(layer))
        project.removeMapLayer(layer.id())
    settle()
    return found


# --- fixtures ---------------------------------------------------------------------------------------------


@pytest.fixture()
def project():
    """The current project, with a layer already in it (results go above it) and a group; cleared afterwards."""
    project = QgsProject.instance()
    project.removeAllMapLayers()
    project.layerTreeRoot().removeAllChildren()
    other = QgsVectorLayer("Point?crs=EPSG:4326", "already there", "memory")
    project.addMapLayer(other)
    project.layerTreeRoot().addGroup("a group of the user")
    yield project
    settle()
    project.removeAllMapLayers()
    project.layerTreeRoot().removeAllChildren()


@pytest.fixture()
def tile(tile_2024_31n):
    return str(tile_2024_31n[1])


@pytest.fixture()
def points_in(tile):
    """A point layer of three points inside the tile, in the tile's CRS."""
    dataset = gdal.Open(tile)
    x0, dx, _, y0, _, dy = dataset.GetGeoTransform()
    width, height, wkt = dataset.RasterXSize, dataset.RasterYSize, dataset.GetProjection()
    dataset = None
    layer = QgsVectorLayer("Point?field=name:string", "points", "memory")
    layer.setCrs(QgsCoordinateReferenceSystem.fromWkt(wkt))
    features = []
    for index, (fx, fy) in enumerate(((0.3, 0.3), (0.5, 0.6), (0.7, 0.4))):
        feature = QgsFeature(layer.fields())
        feature.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(x0 + fx * width * dx, y0 + fy * height * dy)))
        feature.setAttributes([f"p{index}"])
        features.append(feature)
    assert layer.dataProvider().addFeatures(features)[0]
    return layer


def coloured_points_style(tmp_path, colour):
    layer = QgsVectorLayer("Point?crs=EPSG:4326", colour.lstrip("#"), "memory")
    return qml_style(tmp_path, layer, lambda layer: layer.renderer().symbol().setColor(QColor(colour)))


def qml_style(tmp_path, layer, change):
    """A QML file of layer's style after change(layer) (as a user would save one for Processing's options)."""
    change(layer)
    path = tmp_path / f"style_{layer.name()}.qml"
    message, ok = layer.saveNamedStyle(str(path))
    assert ok, message
    return str(path)


@pytest.fixture()
def processing_options():
    """set(name, value) changes one of Processing's options (as its options dialog does) for this test only."""
    from processing.core.ProcessingConfig import ProcessingConfig

    changed = []

    def set_option(name, value):
        key = getattr(ProcessingConfig, name)
        changed.append((key, ProcessingConfig.getSetting(key)))
        ProcessingConfig.setSettingValue(key, value)

    yield set_option
    for key, value in reversed(changed):
        ProcessingConfig.setSettingValue(key, value)


# --- outputs added as the toolbox adds them ------------------------------------------------------------------


def load_parameters(tile):
    return lambda folder: {"PRODUCT": "aef", "SOURCE": tile, "OUTPUT": load_into_project(str(folder / "embeddings.tif"))}


def test_a_load_is_added_named_and_styled_as_the_toolbox_does(project, tile, monkeypatch, tmp_path):
    panel, toolbox = panel_and_processing("geoembed:load", load_parameters(tile), monkeypatch, tmp_path)
    assert panel == toolbox
    assert panel["name"] == "AEF 2024 embeddings" and panel["valid"]
    assert panel["place"] == ((), 0)  # on top of the layer tree
    assert panel["renderer"] == "QgsMultiBandColorRenderer"
    assert panel["bands"] == (2, 17, 10)  # A01, A16, A09: Google's own view of AEF
    assert panel["stretch"] == [(-0.3, 0.3)] * 3


def test_processing_options_style_and_group_apply_before_geoembeds_renderer(
    project, tile, monkeypatch, tmp_path, processing_options
):
    gdal_layer = QgsRasterLayer(tile, "brightened", "gdal")
    raster_style = qml_style(tmp_path, gdal_layer, lambda layer: layer.brightnessFilter().setBrightness(40))
    processing_options("RASTER_STYLE", raster_style)
    processing_options("RESULTS_GROUP_NAME", "Processing results")
    group = project.layerTreeRoot().addGroup("Processing results")
    group.addLayer(project.mapLayersByName("already there")[0])  # an earlier result
    panel, toolbox = panel_and_processing("geoembed:load", load_parameters(tile), monkeypatch, tmp_path)
    # In the results group: on top, as QGIS 3.44's Processing does (3.22's appended results to the group's end).
    assert panel.pop("place") == (("Processing results",), 0)
    assert toolbox.pop("place")[0] == ("Processing results",)
    assert panel == toolbox
    assert panel["brightness"] == 40  # the user's style ...
    assert panel["renderer"] == "QgsMultiBandColorRenderer" and panel["stretch"] == [(-0.3, 0.3)] * 3  # ... then GeoEmbed's


def test_a_vector_output_takes_the_point_style_of_processings_options(
    project, tile, points_in, monkeypatch, tmp_path, processing_options
):
    from processing.core.ProcessingConfig import ProcessingConfig

    processing_options("VECTOR_POINT_STYLE", coloured_points_style(tmp_path, "#d01c8b"))
    count_option = hasattr(ProcessingConfig, "VECTOR_FEATURE_COUNT")  # an option since QGIS 3.44
    if count_option:
        processing_options("VECTOR_FEATURE_COUNT", True)
    panel, toolbox = panel_and_processing(
        "geoembed:sample",
        lambda folder: {"INPUT": tile, "POINTS": points_in, "OUTPUT": load_into_project(str(folder / "samples.gpkg"))},
        monkeypatch,
        tmp_path,
    )
    assert panel == toolbox
    assert panel["colour"] == "#d01c8b" and panel["place"] == ((), 0)
    assert panel["feature count shown"] == count_option


def test_a_style_set_for_the_algorithms_output_wins_over_the_default_one(
    project, tile, points_in, monkeypatch, tmp_path, processing_options
):
    from processing.gui.RenderingStyles import RenderingStyles

    processing_options("VECTOR_POINT_STYLE", coloured_points_style(tmp_path, "#d01c8b"))
    monkeypatch.setitem(RenderingStyles.styles, "geoembed:sample", {"OUTPUT": coloured_points_style(tmp_path, "#2c7bb6")})
    panel, toolbox = panel_and_processing(
        "geoembed:sample",
        lambda folder: {"INPUT": tile, "POINTS": points_in, "OUTPUT": load_into_project(str(folder / "samples.gpkg"))},
        monkeypatch,
        tmp_path,
    )
    assert panel == toolbox and panel["colour"] == "#2c7bb6"


# --- a test algorithm whose end the test decides ------------------------------------------------------------


class Blocking(QgsProcessingAlgorithm):
    """Waits until the test releases it; names an OUTPUT it never writes (so QGIS cannot open it as a layer)."""

    started = threading.Event()
    release = threading.Event()

    def name(self):
        return "blocking"

    def displayName(self):  # noqa: N802 - QGIS API
        return "Blocking"

    def createInstance(self):  # noqa: N802 - QGIS API
        return Blocking()

    def initAlgorithm(self, config=None):  # noqa: N802 - QGIS API
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", "Output"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API
        Blocking.started.set()
        Blocking.release.wait(120)
        return {"OUTPUT": self.parameterAsOutputLayer(parameters, "OUTPUT", context)}


class RunnerTestProvider(QgsProcessingProvider):
    def id(self):
        return TEST_PROVIDER

    def name(self):
        return "GeoEmbed runner tests"

    def loadAlgorithms(self):  # noqa: N802 - QGIS API
        self.addAlgorithm(Blocking())


@pytest.fixture()
def blocking():
    registry = QgsApplication.processingRegistry()
    provider = RunnerTestProvider()
    assert registry.addProvider(provider)
    Blocking.started.clear()
    Blocking.release.clear()
    yield f"{TEST_PROVIDER}:blocking"
    Blocking.release.set()
    settle()
    registry.removeProvider(TEST_PROVIDER)


def test_the_context_and_feedback_live_until_the_task_is_deleted_even_when_the_run_is_gone(blocking, tmp_path):
    settle()
    kept_before = runner.objects_kept_for_tasks()
    run = AlgorithmRun(blocking, {"OUTPUT": load_into_project(str(tmp_path / "never.tif"))})
    context, feedback = weakref.ref(run.context), weakref.ref(run.feedback)
    run.start()
    assert Blocking.started.wait(60), "the task did not start"
    # the panel goes away while the task runs (QGIS closing, the plugin reloaded): the run object is deleted
    run.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    del run
    gc.collect()
    assert context() is not None and feedback() is not None, "the task still refers to them"
    assert runner.objects_kept_for_tasks() == kept_before + 1
    Blocking.release.set()
    settle()
    gc.collect()
    assert context() is None and feedback() is None, "kept after the task was deleted"
    assert runner.objects_kept_for_tasks() == kept_before


def test_a_finished_run_lets_go_of_its_context_and_can_still_be_cancelled(blocking, tmp_path):
    settle()
    kept_before = runner.objects_kept_for_tasks()
    run = AlgorithmRun(blocking, {"OUTPUT": load_into_project(str(tmp_path / "never.tif"))}).start()
    context = weakref.ref(run.context)
    Blocking.release.set()
    wait_for(run)
    assert run.context is None
    settle()
    gc.collect()
    assert context() is None and runner.objects_kept_for_tasks() == kept_before
    run.cancel()  # the task is gone: nothing to do, and no crash
    assert run.done


def test_an_output_qgis_cannot_open_is_one_warning_and_adds_nothing(blocking, project, tmp_path):
    bar = MessageBar()
    before = set(project.mapLayers())
    run = AlgorithmRun(blocking, {"OUTPUT": load_into_project(str(tmp_path / "never.tif"))}, bar).start()
    Blocking.release.set()
    wait_for(run)
    assert run.ok
    assert set(project.mapLayers()) == before
    assert len(bar.messages) == 1 and "\n" not in bar.messages[0][0]
    assert bar.messages[0][0].startswith("Blocking: QGIS could not open ") and "never.tif" in bar.messages[0][0]
    assert any("never.tif" in error for error in run.feedback.errors)


def test_a_cancelled_run_adds_nothing_and_says_nothing(blocking, project, tmp_path):
    bar = MessageBar()
    before = set(project.mapLayers())
    run = AlgorithmRun(blocking, {"OUTPUT": load_into_project(str(tmp_path / "never.tif"))}, bar).start()
    assert Blocking.started.wait(60)
    run.cancel()
    Blocking.release.set()
    wait_for(run)
    assert not run.ok and run.message == runner.CANCELLED
    assert set(project.mapLayers()) == before and bar.messages == []


def test_a_failing_run_is_one_critical_line(project, tmp_path):
    bar = MessageBar()
    before = set(project.mapLayers())
    missing = str(tmp_path / "no" / "such.tiff")
    parameters = {"PRODUCT": "aef", "SOURCE": missing, "OUTPUT": load_into_project(str(tmp_path / "e.tif"))}
    run = panel_run("geoembed:load", parameters, bar)
    assert not run.ok and "such.tiff" in run.message
    assert len(bar.messages) == 1
    text, level = bar.messages[0]
    assert "\n" not in text and text.startswith(f"{run.algorithm.displayName()}: ") and "such.tiff" in text
    assert level == Qgis.MessageLevel.Critical
    assert set(project.mapLayers()) == before
