"""Label & classify tab: classes with colours, points and polygons drawn on the map, then geoembed:train; then a
class's most confident pixels to review: the ones marked wrong, with their right class, become labels for retraining."""

import json
import math

from qgis.core import QgsCoordinateTransform, QgsGeometry, QgsPointXY, QgsProject, QgsRasterLayer
from qgis.gui import QgsColorButton
from qgis.PyQt.QtCore import QUrl
from qgis.PyQt.QtGui import QColor, QDesktopServices, QIcon, QPixmap
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..analysis.review import most_confident
from ..providers.train import METHODS
from .layers import CLASS_FIELD, add_geometry, colour_by_class, live, memory_layer, pixel_polygon, to_layer_crs
from .map_tools import PointLabelTool, PolygonLabelTool, use_tool
from .review_list import RIGHT, WRONG, BackgroundCall, ReviewList
from .runner import load_into_project

POINT_LABELS, POLYGON_LABELS, TRAINING = "GeoEmbed labels (points)", "GeoEmbed labels (polygons)", "GeoEmbed training samples"
REVIEW = "GeoEmbed review (classes)"
PALETTE = ("#1f77b4", "#2ca02c", "#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f")


class LabelPanel(QWidget):
    def __init__(self, dock):
        super().__init__()
        self.dock = dock
        self.classes = []  # [(name, QColor)]
        self.points_id = self.polygons_id = None
        self.report_path = None
        self.point_tool = PointLabelTool(dock.canvas)
        self.point_tool.placed.connect(self.add_point)
        self.polygon_tool = PolygonLabelTool(dock.canvas)
        self.polygon_tool.drawn.connect(self.add_polygon)
        self.class_list = QListWidget()
        self.class_name = QLineEdit()
        self.class_name.setPlaceholderText(self.tr("class name, e.g. forest"))
        self.class_colour = QgsColorButton()
        self.class_colour.setColor(QColor(PALETTE[0]))
        self.add_class_button = QPushButton(self.tr("Add class"))
        self.add_class_button.clicked.connect(lambda: self.add_class(self.class_name.text(), self.class_colour.color()))
        self.remove_class_button = QPushButton(self.tr("Remove class"))
        self.remove_class_button.clicked.connect(self.remove_class)
        self.point_button = QPushButton(self.tr("Label points"))
        self.polygon_button = QPushButton(self.tr("Draw polygons"))
        for button, tool in ((self.point_button, self.point_tool), (self.polygon_button, self.polygon_tool)):
            button.setCheckable(True)
            button.toggled.connect(lambda on, tool=tool: use_tool(self.dock.canvas, tool, on))
            tool.deactivated.connect(lambda button=button: button.setChecked(False))
        self.method = QComboBox()
        for method in METHODS:
            self.method.addItem(method.replace("_", " "), method)
        self.train_button = QPushButton(self.tr("Train and classify"))
        self.train_button.clicked.connect(self.train)
        self.accuracy = QLabel()
        self.confusion = QTableWidget()
        self.confusion.setToolTip(self.tr("Spatially blocked cross-validation: rows are the true classes, columns the predicted"))
        self.report_button = QPushButton(self.tr("Open the accuracy report"))
        self.report_button.setEnabled(False)
        self.report_button.clicked.connect(lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(self.report_path)))
        self.trained_outputs = None  # (classes path, confidence path, class names) of the last training
        self.listing = None  # the background search for the most confident pixels
        self.review_class = QComboBox()
        self.review_count = QSpinBox()
        self.review_count.setRange(1, 1000)
        self.review_count.setValue(20)
        self.list_button = QPushButton(self.tr("List the most confident"))
        self.list_button.setEnabled(False)
        self.list_button.clicked.connect(self.list_confident)
        self.review = ReviewList(dock, REVIEW, corrections_label=self.tr("Wrong: its class is"))
        self.review.retrain_requested.connect(self.retrain_with_marks)
        layout = QVBoxLayout(self)
        row = QHBoxLayout()
        row.addWidget(self.class_name, 1)
        row.addWidget(self.class_colour)
        row.addWidget(self.add_class_button)
        layout.addLayout(row)
        layout.addWidget(self.class_list)
        row = QHBoxLayout()
        row.addWidget(self.remove_class_button)
        row.addWidget(self.point_button)
        row.addWidget(self.polygon_button)
        layout.addLayout(row)
        hint = QLabel(self.tr("Polygons: click the corners, right-click to close. Labels take the selected class."))
        hint.setWordWrap(True)
        layout.addWidget(hint)
        row = QHBoxLayout()
        row.addWidget(QLabel(self.tr("Method")))
        row.addWidget(self.method, 1)
        row.addWidget(self.train_button)
        layout.addLayout(row)
        layout.addWidget(self.accuracy)
        layout.addWidget(self.confusion, 1)
        layout.addWidget(self.report_button)
        row = QHBoxLayout()
        row.addWidget(QLabel(self.tr("Review")))
        row.addWidget(self.review_class, 1)
        row.addWidget(self.review_count)
        row.addWidget(self.list_button)
        layout.addLayout(row)
        layout.addWidget(self.review, 1)

    # --- classes -----------------------------------------------------------------------------

    def add_class(self, name, colour):
        name = (name or "").strip()
        if not name:
            self.dock.tell(self.tr("Give the class a name."))
            return
        if name in [n for n, _ in self.classes]:
            self.dock.tell(self.tr("There is already a class called {}.").format(name))
            return
        self.classes.append((name, QColor(colour)))
        pixmap = QPixmap(14, 14)
        pixmap.fill(QColor(colour))
        self.class_list.addItem(QListWidgetItem(QIcon(pixmap), name))
        self.class_list.setCurrentRow(self.class_list.count() - 1)
        self.class_name.clear()
        self.class_colour.setColor(QColor(PALETTE[len(self.classes) % len(PALETTE)]))
        self._restyle()

    def remove_class(self):
        row = self.class_list.currentRow()
        if row < 0:
            return
        self.class_list.takeItem(row)
        del self.classes[row]
        self._restyle()

    def current_class(self):
        row = self.class_list.currentRow()
        return self.classes[row][0] if 0 <= row < len(self.classes) else None

    def _restyle(self):
        for layer in (live(self.points_id), live(self.polygons_id)):
            if layer is not None:
                colour_by_class(layer, self.classes)

    # --- labels on the map -------------------------------------------------------------------

    def _label_layer(self, attribute, name, geometry):
        raster = self.dock.embedding_layer()
        crs = raster.crs() if raster is not None else self.dock.canvas.mapSettings().destinationCrs()
        layer = live(getattr(self, attribute))
        if layer is None:
            layer = memory_layer(name, geometry, crs, [CLASS_FIELD])
            QgsProject.instance().addMapLayer(layer)
            setattr(self, attribute, layer.id())
            colour_by_class(layer, self.classes)
        return layer

    def _checked_class(self):
        name = self.current_class()
        if name is None:
            self.dock.tell(self.tr("Add a class and select it before labelling."))
        return name

    def add_point(self, point):
        """A labelled point at a canvas click (point in the canvas CRS)."""
        name = self._checked_class()
        if name is None:
            return
        layer = self._label_layer("points_id", POINT_LABELS, "Point")
        canvas_crs = self.dock.canvas.mapSettings().destinationCrs()
        where = to_layer_crs(point, canvas_crs, layer)
        add_geometry(layer, QgsGeometry.fromPointXY(where), [name])

    def add_polygon(self, geometry):
        """A labelled polygon drawn on the canvas (geometry in the canvas CRS)."""
        name = self._checked_class()
        if name is None:
            return
        layer = self._label_layer("polygons_id", POLYGON_LABELS, "Polygon")
        canvas_crs = self.dock.canvas.mapSettings().destinationCrs()
        if canvas_crs != layer.crs():
            geometry.transform(QgsCoordinateTransform(canvas_crs, layer.crs(), QgsProject.instance()))
        add_geometry(layer, geometry, [name])

    # --- training ----------------------------------------------------------------------------

    def training_layer(self):
        """The labels as one layer for geoembed:train: points or polygons as drawn, or both as polygons
        (each point becomes the footprint of the embedding pixel it falls in, so it still counts as one pixel)."""
        points, polygons = live(self.points_id), live(self.polygons_id)
        points = points if points is not None and points.featureCount() else None
        polygons = polygons if polygons is not None and polygons.featureCount() else None
        if points is None or polygons is None:
            return points or polygons
        raster = self.dock.embedding_layer()
        merged = memory_layer(TRAINING, "Polygon", raster.crs(), [CLASS_FIELD])
        for feature in polygons.getFeatures():
            geometry = feature.geometry()
            if polygons.crs() != raster.crs():
                geometry.transform(QgsCoordinateTransform(polygons.crs(), raster.crs(), QgsProject.instance()))
            add_geometry(merged, geometry, [feature[CLASS_FIELD]])
        for feature in points.getFeatures():
            where = to_layer_crs(feature.geometry().asPoint(), points.crs(), raster)
            square = pixel_polygon(raster, where)
            if square is not None:
                add_geometry(merged, square, [feature[CLASS_FIELD]])
        return merged

    def train(self):
        raster = self.dock.embedding_layer()
        if raster is None:
            self.dock.tell(self.tr("Choose an embedding layer at the top of the GeoEmbed panel first."))
            return None
        training = self.training_layer()
        if training is None:
            self.dock.tell(self.tr("Label some points or polygons on the map first."))
            return None
        self._training = training  # kept alive while the task reads it
        self.report_path = self.dock.output_path("classifier_report", "html")
        parameters = {
            "INPUT": raster.source(),
            "TRAINING": training,
            "FIELD": CLASS_FIELD,
            "METHOD": self.method.currentData(),
            "OUTPUT": load_into_project(self.dock.output_path("classes", "tif")),
            "OUTPUT_CONFIDENCE": load_into_project(self.dock.output_path("confidence", "tif")),
            "OUTPUT_REPORT": self.report_path,
        }
        return self.dock.run("geoembed:train", parameters, self._trained)

    def _trained(self, results):
        metrics = json.loads(results.get("METRICS") or "{}")
        self.show_metrics(metrics)
        self.report_button.setEnabled(bool(self.report_path))
        names = list(metrics.get("classes", []))
        self.trained_outputs = (results.get("OUTPUT"), results.get("OUTPUT_CONFIDENCE"), names)
        chosen = self.review_class.currentText()
        self.review_class.clear()
        self.review_class.addItems(names)
        if chosen in names:
            self.review_class.setCurrentIndex(names.index(chosen))
        self.review.set_corrections(names)
        self.list_button.setEnabled(bool(names) and bool(results.get("OUTPUT_CONFIDENCE")))
        if self.review.count():  # a retrain: list the reviewed class again, from the new result
            self.list_confident()

    # --- reviewing the result ----------------------------------------------------------------------

    def list_confident(self):
        """The chosen class's most confident pixels (read in a background task) into the review list."""
        if self.trained_outputs is None or self.review_class.currentIndex() < 0:
            self.dock.tell(self.tr("Train and classify first."))
            return None
        classes_path, confidence_path, names = self.trained_outputs
        name, value, count = self.review_class.currentText(), self.review_class.currentIndex() + 1, self.review_count.value()
        others = [n for n in names if n != name]
        if others:
            self.review.correction.setCurrentIndex(names.index(others[0]))

        def search(is_cancelled):
            return most_confident(classes_path, confidence_path, value, count, is_cancelled)

        def show(found):
            scores, rows, cols = found
            grid = QgsRasterLayer(classes_path, "classes", "gdal")
            extent, res_x, res_y = grid.extent(), grid.rasterUnitsPerPixelX(), grid.rasterUnitsPerPixelY()
            x0, y0 = extent.xMinimum(), extent.yMaximum()
            points = [QgsPointXY(x0 + (c + 0.5) * res_x, y0 - (r + 0.5) * res_y) for r, c in zip(rows, cols)]
            self.review.set_matches(points, scores, grid.crs(), [name] * len(points))

        self.listing = BackgroundCall(self.dock, self.tr("GeoEmbed: most confident pixels"), search, show)
        return self.listing

    def retrain_with_marks(self):
        """Pixels marked right keep their class, pixels marked wrong take the class chosen for them: each becomes a
        labelled point (replacing the point labels already in that pixel), then the classifier is trained again."""
        raster = self.dock.embedding_layer()
        corrected = self.review.marked(RIGHT) + [(p, c) for p, c in self.review.marked(WRONG) if c]
        if raster is None or not corrected:
            self.dock.tell(self.tr("Mark some pixels right, or wrong with their right class, first."))
            return None
        layer = self._label_layer("points_id", POINT_LABELS, "Point")
        for point, name in corrected:
            where = to_layer_crs(point, self.review.crs, raster)
            self._drop_point_labels_in_pixel(layer, raster, where)
            add_geometry(layer, QgsGeometry.fromPointXY(to_layer_crs(where, raster.crs(), layer)), [name])
        return self.train()

    def _drop_point_labels_in_pixel(self, layer, raster, where):
        pixel = _pixel_of(raster, where)
        doomed = [
            feature.id()
            for feature in layer.getFeatures()
            if _pixel_of(raster, to_layer_crs(feature.geometry().asPoint(), layer.crs(), raster)) == pixel
        ]
        if doomed:
            layer.dataProvider().deleteFeatures(doomed)

    def show_metrics(self, metrics):
        """Accuracy and the confusion matrix of the blocked cross-validation, in the panel."""
        classes = metrics.get("classes", [])
        accuracy = metrics.get("accuracy")
        self.accuracy.setText(
            self.tr("Cross-validated accuracy: {:.1f} %").format(100 * accuracy)
            if accuracy is not None
            else self.tr("Too few samples or spatial blocks to cross-validate.")
        )
        confusion = metrics.get("confusion") or []
        self.confusion.clear()
        self.confusion.setRowCount(len(confusion))
        self.confusion.setColumnCount(len(confusion))
        self.confusion.setHorizontalHeaderLabels(classes[: len(confusion)])
        self.confusion.setVerticalHeaderLabels(classes[: len(confusion)])
        for row, counts in enumerate(confusion):
            for col, count in enumerate(counts):
                self.confusion.setItem(row, col, QTableWidgetItem(str(count)))

    def unload(self):
        canvas = self.dock.canvas
        for tool in (self.point_tool, self.polygon_tool):
            if canvas.mapTool() is tool:
                canvas.unsetMapTool(tool)
        self.polygon_tool.remove()
        self.review.unload()


def _pixel_of(raster, point):
    """(row, col) of the raster pixel a point (in the raster's CRS) falls in."""
    extent = raster.extent()
    col = math.floor((point.x() - extent.xMinimum()) / raster.rasterUnitsPerPixelX())
    row = math.floor((extent.yMaximum() - point.y()) / raster.rasterUnitsPerPixelY())
    return row, col
