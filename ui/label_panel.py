"""Label & classify tab: classes with colours, points and polygons drawn on the map, then geoembed:train."""

import json

from qgis.core import QgsCoordinateTransform, QgsGeometry, QgsProject
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
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..providers.train import METHODS
from .layers import CLASS_FIELD, add_geometry, colour_by_class, live, memory_layer, pixel_polygon, to_layer_crs
from .map_tools import PointLabelTool, PolygonLabelTool
from .runner import load_into_project

POINT_LABELS, POLYGON_LABELS, TRAINING = "GeoEmbed labels (points)", "GeoEmbed labels (polygons)", "GeoEmbed training samples"
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
            button.toggled.connect(lambda on, tool=tool: self._toggle_tool(tool, on))
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

    def _toggle_tool(self, tool, on):
        canvas = self.dock.canvas
        if on:
            canvas.setMapTool(tool)
        elif canvas.mapTool() is tool:
            canvas.unsetMapTool(tool)

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
        self.show_metrics(json.loads(results.get("METRICS") or "{}"))
        self.report_button.setEnabled(bool(self.report_path))

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
