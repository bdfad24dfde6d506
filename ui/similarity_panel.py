"""Similarity tab: click examples on the map, see the heatmap, mask it with a threshold, drop the best matches;
review the best matches (right or wrong), retrain with them, and save the query to run it elsewhere."""

from qgis.core import (
    Qgis,
    QgsApplication,
    QgsCoordinateTransform,
    QgsMessageLog,
    QgsProcessing,
    QgsProcessingUtils,
    QgsProject,
    QgsRasterLayer,
    QgsTask,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QCoreApplication, Qt
from qgis.PyQt.QtGui import QColor
from qgis.PyQt.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..analysis.query_file import FILE_FILTER, SUFFIX
from ..analysis.similarity import preview_heatmap, query_at
from ..loaders.catalog import has_unit_vectors
from ..loaders.errors import GeoEmbedError
from ..loaders.raster import overviews
from ..loaders.raster.embedding_tiff import EmbeddingTiff
from ..providers.styles import apply_ramp
from .layers import add_point, clear, layers_with_source, live, memory_layer, to_layer_crs
from .map_tools import NEGATIVE, NEW, ExampleTool, use_tool
from .review_list import RIGHT, WRONG, ReviewList
from .runner import LOG_TAG, load_into_project

EXAMPLES, COUNTER_EXAMPLES = "GeoEmbed examples", "GeoEmbed counter-examples"
REVIEW = "GeoEmbed review (similarity)"


class SimilarityPanel(QWidget):
    def __init__(self, dock):
        super().__init__()
        self.dock = dock
        self.tool = ExampleTool(dock.canvas)
        self.tool.picked.connect(self.pick)
        self.examples_id = self.negatives_id = self.heatmap_id = self.preview_id = None
        self.overview_builder = OverviewBuilder(dock)
        self.pick_button = QPushButton(self.tr("Pick examples on the map"))
        self.pick_button.setCheckable(True)
        self.pick_button.toggled.connect(lambda on: use_tool(self.dock.canvas, self.tool, on))
        self.tool.deactivated.connect(lambda: self.pick_button.setChecked(False))
        hint = QLabel(self.tr("Click: a new example · Shift+click: one more example · Alt+click: a counter-example"))
        hint.setWordWrap(True)
        self.threshold = QSlider(Qt.Orientation.Horizontal)
        self.threshold.setRange(-100, 100)
        self.threshold.setValue(-100)
        self.threshold.valueChanged.connect(self.apply_threshold)
        self.threshold_label = QLabel()
        form = QFormLayout()
        row = QHBoxLayout()
        row.addWidget(self.threshold, 1)
        row.addWidget(self.threshold_label)
        form.addRow(self.tr("Show above"), row)
        self.k = QSpinBox()
        self.k.setRange(1, 10000)
        self.k.setValue(10)
        self.top_button = QPushButton(self.tr("Add the top K matches as points"))
        self.top_button.clicked.connect(self.top_matches)
        form.addRow(self.tr("K"), self.k)
        self.clear_button = QPushButton(self.tr("Clear examples"))
        self.clear_button.clicked.connect(self.clear_examples)
        self.review = ReviewList(dock, REVIEW)
        self.review.retrain_requested.connect(self.retrain)
        self.save_button = QPushButton(self.tr("Save query…"))
        self.save_button.setToolTip(self.tr("The examples and counter-examples as vectors, to run with QUERY_FILE elsewhere"))
        self.save_button.clicked.connect(self._ask_where_to_save)
        layout = QVBoxLayout(self)
        layout.addWidget(self.pick_button)
        layout.addWidget(hint)
        layout.addLayout(form)
        layout.addWidget(self.top_button)
        layout.addWidget(self.clear_button)
        layout.addWidget(QLabel(self.tr("The K best matches: mark them right or wrong, then retrain")))
        layout.addWidget(self.review, 1)
        layout.addWidget(self.save_button)
        self._show_threshold()

    # --- examples ----------------------------------------------------------------------------

    def _example_layers(self, crs):
        """The examples and counter-examples layers, in crs (created, or re-created when the CRS changed)."""
        found = []
        for attribute, name, colour in (
            ("examples_id", EXAMPLES, QColor(40, 200, 60)),
            ("negatives_id", COUNTER_EXAMPLES, QColor(220, 40, 40)),
        ):
            layer = live(getattr(self, attribute))
            if layer is not None and layer.crs() != crs:
                QgsProject.instance().removeMapLayer(layer.id())
                layer = None
            if layer is None:
                layer = memory_layer(name, "Point", crs)
                layer.renderer().symbol().setColor(colour)
                QgsProject.instance().addMapLayer(layer)
                setattr(self, attribute, layer.id())
            found.append(layer)
        return found

    def pick(self, point, mode):
        """A click on the map (point in the canvas CRS): update the examples and recompute the heatmap."""
        raster = self.dock.embedding_layer()
        if raster is None:
            self.dock.tell(self.tr("Choose an embedding layer at the top of the GeoEmbed panel first."))
            return None
        examples, negatives = self._example_layers(raster.crs())
        if mode == NEW:
            clear(examples)
            clear(negatives)
        where = to_layer_crs(point, self.dock.canvas.mapSettings().destinationCrs(), raster)
        add_point(negatives if mode == NEGATIVE else examples, where)
        if examples.featureCount() == 0:
            self.dock.tell(self.tr("Add an example (a click or Shift+click) before counter-examples."))
            return None
        return self.compute()

    def clear_examples(self):
        for layer in (live(self.examples_id), live(self.negatives_id)):
            if layer is not None:
                clear(layer)

    def _parameters(self, output):
        raster = self.dock.embedding_layer()
        examples, negatives = live(self.examples_id), live(self.negatives_id)
        parameters = {"INPUT": raster.source(), "QUERY": examples, "K": 0, "OUTPUT": output}
        if negatives is not None and negatives.featureCount():
            parameters["NEGATIVE"] = negatives
        return parameters

    # --- heatmap -----------------------------------------------------------------------------

    def compute(self):
        """The heatmap of the examples, and its K best matches in the review list: first a preview of the visible
        extent at screen resolution (shown at once), then the full-resolution heatmap computed in the background."""
        path = self.dock.output_path("similarity", "tif")
        parameters = self._parameters(load_into_project(path))
        parameters["K"] = self.k.value()
        parameters["OUTPUT_MATCHES"] = QgsProcessingUtils.generateTempFilename("review_matches.gpkg")  # read, not shown
        self.preview()
        return self.dock.run("geoembed:similarity", parameters, lambda results: self._show(path, results), replace=True)

    def preview(self):
        """The heatmap of what the map shows, at the map's resolution, from the layer's overviews (reads screen-sized
        pixels whatever the layer's size): a layer shown at once, replaced when the full-resolution heatmap is done.
        None when the layer cannot be previewed (not a GeoEmbed GeoTIFF, or a large one without overviews: those are
        then built in the background, for the next click)."""
        raster = self.dock.embedding_layer()
        try:
            return self._preview(raster)
        except GeoEmbedError as exc:  # the full-resolution run says what is wrong, if anything is
            QgsMessageLog.logMessage(f"No similarity preview: {exc}", LOG_TAG, Qgis.MessageLevel.Info)
            return None

    def _preview(self, raster):
        canvas = self.dock.canvas
        size = canvas.mapSettings().outputSize()
        source = preview_source(raster)
        if source is None or size.width() <= 0 or size.height() <= 0:
            return None
        if not overviews.has_overviews(source) and raster.width() * raster.height() > 4 * size.width() * size.height():
            self.overview_builder.start(raster)
            return None
        extent = canvas.mapSettings().visibleExtent()
        if canvas.mapSettings().destinationCrs() != raster.crs():
            transform = QgsCoordinateTransform(canvas.mapSettings().destinationCrs(), raster.crs(), QgsProject.instance())
            extent = transform.transformBoundingBox(extent)
        embeddings = EmbeddingTiff(source)
        try:
            query, negative = query_at(embeddings, _points(live(self.examples_id)), _points(live(self.negatives_id)))
        finally:
            embeddings.close()
        if query is None:
            return None
        output = QgsProcessingUtils.generateTempFilename("similarity_preview.tif")
        bounds = (extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum())
        if preview_heatmap(source, query, negative, bounds, size.width(), size.height(), output) is None:
            return None
        layer = QgsRasterLayer(output, self.tr("Similarity (preview)"), "gdal")
        QgsProject.instance().addMapLayer(layer)
        self._remove_heatmaps(keep=layer.id())
        self.heatmap_id = self.preview_id = layer.id()
        self.apply_threshold()
        return layer

    def _show(self, path, results=None):
        if results and results.get("OUTPUT_MATCHES"):
            self._list_matches(results["OUTPUT_MATCHES"])
        self._show_heatmap(path)

    def _list_matches(self, source):
        matches = QgsVectorLayer(source, "matches", "ogr")
        features = sorted(matches.getFeatures(), key=lambda f: f["rank"])
        points = [f.geometry().asPoint() for f in features]
        self.review.set_matches(points, [f["score"] for f in features], matches.crs())

    def retrain(self):
        """The matches marked right become examples, those marked wrong counter-examples; the heatmap is recomputed."""
        raster = self.dock.embedding_layer()
        right, wrong = self.review.marked(RIGHT), self.review.marked(WRONG)
        if raster is None or live(self.examples_id) is None or not (right or wrong):
            self.dock.tell(self.tr("Mark some of the best matches right or wrong first."))
            return None
        examples, negatives = self._example_layers(raster.crs())
        for layer, marked in ((examples, right), (negatives, wrong)):
            for point, _ in marked:
                add_point(layer, to_layer_crs(point, self.review.crs, raster))
        return self.compute()

    def _ask_where_to_save(self):
        path, _ = QFileDialog.getSaveFileName(self, self.tr("Save the query"), "", FILE_FILTER)
        if path:
            self.save_query(path)

    def save_query(self, path):
        """Write the examples and counter-examples as vectors with geoembed:similarity's OUTPUT_QUERY."""
        examples = live(self.examples_id)
        if self.dock.embedding_layer() is None or examples is None or examples.featureCount() == 0:
            self.dock.tell(self.tr("Pick at least one example on the map first."))
            return None
        if not path.endswith(SUFFIX):
            path = path[: -len(".json")] if path.endswith(".json") else path
            path += SUFFIX
        parameters = self._parameters(QgsProcessing.TEMPORARY_OUTPUT)
        parameters["OUTPUT_QUERY"] = path
        done = lambda results: self.dock.tell(self.tr("Query saved to {}").format(path), Qgis.MessageLevel.Info)  # noqa: E731
        return self.dock.run("geoembed:similarity", parameters, done)

    def _show_heatmap(self, path):
        layers = layers_with_source(path)
        if not layers:
            return
        self._remove_heatmaps(keep=layers[-1].id())  # the last heatmap, or this one's preview
        self.heatmap_id = layers[-1].id()
        self.preview_id = None
        self.apply_threshold()

    def _remove_heatmaps(self, keep):
        for layer_id in {self.heatmap_id, self.preview_id} - {keep, None}:
            if live(layer_id) is not None:
                QgsProject.instance().removeMapLayer(layer_id)

    def heatmap(self):
        return live(self.heatmap_id)

    def threshold_value(self):
        return self.threshold.value() / 100.0

    def _show_threshold(self):
        value = self.threshold_value()
        self.threshold_label.setText(self.tr("all") if value <= -1 else f"{value:+.2f}")

    def apply_threshold(self, *_):
        """Pixels below the threshold are not drawn; the ramp spans threshold..1 so the matches keep their contrast."""
        self._show_threshold()
        layer = self.heatmap()
        if layer is not None:
            apply_ramp(layer, self.threshold_value() if self.threshold_value() > -1 else -1.0, 1.0, clip=True)

    def top_matches(self):
        examples = live(self.examples_id)
        if self.dock.embedding_layer() is None or examples is None or examples.featureCount() == 0:
            self.dock.tell(self.tr("Pick at least one example on the map first."))
            return None
        parameters = self._parameters(QgsProcessing.TEMPORARY_OUTPUT)  # only the matches are wanted here
        parameters["K"] = self.k.value()
        parameters["OUTPUT_MATCHES"] = load_into_project(self.dock.output_path("best_matches", "gpkg"))
        return self.dock.run("geoembed:similarity", parameters)

    def unload(self):
        self.overview_builder.cancel()
        canvas = self.dock.canvas
        if canvas.mapTool() is self.tool:
            canvas.unsetMapTool(self.tool)
        self.review.unload()


def _points(layer):
    """[(x, y)] of a point layer's features (in the layer's CRS), [] without one."""
    if layer is None:
        return []
    return [(p.x(), p.y()) for p in (f.geometry().asPoint() for f in layer.getFeatures())]


def preview_source(layer):
    """The file of a layer that can be previewed (a GeoTIFF written by GeoEmbed), else None."""
    if not isinstance(layer, QgsRasterLayer) or layer.providerType() != "gdal":
        return None
    source = layer.source()
    if "|" in source or not source.lower().endswith((".tif", ".tiff")):
        return None
    from osgeo import gdal

    dataset = gdal.Open(source)
    return source if dataset is not None and (dataset.GetMetadata() or {}).get("GEOEMBED_PRODUCT") else None


class OverviewBuilder:
    """Builds a layer's embedding overviews (FILE.ovr) in a background task, once per file, so that the next clicks
    can be previewed; the layer is redrawn from them when they are done."""

    def __init__(self, dock):
        self.dock = dock
        self.task = None
        self.running = False
        self.started = set()

    def start(self, layer):
        source = layer.source()
        if source in self.started or self.running:
            return
        self.started.add(source)
        normalise = has_unit_vectors(EmbeddingTiff(source).provenance.product)
        layer_id = layer.id()

        def build(task):
            return overviews.build(source, normalise, lambda f: task.setProgress(100 * f), task.isCanceled, external=True)

        def done(exception, result=None):
            self.running = False
            if exception is not None:
                QgsMessageLog.logMessage(f"Overviews of {source} failed: {exception}", LOG_TAG, Qgis.MessageLevel.Warning)
                return
            built = QgsProject.instance().mapLayer(layer_id)
            if built is not None:
                built.dataProvider().reloadData()  # GDAL opens the new .ovr: QGIS draws from it too
                built.triggerRepaint()

        self.running = True
        self.task = QgsTask.fromFunction("GeoEmbed: embedding overviews", build, on_finished=done)
        QgsApplication.taskManager().addTask(self.task)
        text = "Building the overviews of this large layer: once they are done, a click shows a preview at once."
        self.dock.tell(QCoreApplication.translate("SimilarityPanel", text), Qgis.MessageLevel.Info)

    def cancel(self):
        if self.running and self.task is not None:
            self.task.cancel()
