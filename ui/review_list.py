"""The review list of the dock panel: the best matches of a search (or a class's most confident pixels), each marked
right or wrong from the list or on the map, drawn green and red; the panel retrains with the marks.

Shared by the Similarity tab (wrong = a counter-example) and the Label & classify tab (wrong = another class).
"""

from qgis.core import (
    QgsApplication,
    QgsCategorizedSymbolRenderer,
    QgsCoordinateTransform,
    QgsGeometry,
    QgsProject,
    QgsRendererCategory,
    QgsSymbol,
    QgsTask,
)
from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtGui import QColor
from qgis.PyQt.QtWidgets import QComboBox, QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget

from ..qgis_compat import GEOMETRY_POINT
from .layers import add_point, clear, live, memory_layer
from .map_tools import ReviewTool, use_tool

RIGHT, WRONG, OPEN = "right", "wrong", "open"
MARK_FIELD = "mark"
COLOURS = {RIGHT: QColor(30, 190, 60), WRONG: QColor(225, 30, 30), OPEN: QColor(255, 210, 0)}
CLICK_TOLERANCE_PX = 12  # how near a click on the map must be to a match to mark it
NEXT_MARK = {None: RIGHT, RIGHT: WRONG, WRONG: None}  # what a click on the map does to a match


class ReviewList(QWidget):
    """Matches (points in crs, score, label) with a mark each: right, wrong (with a correction, if offered) or none."""

    changed = pyqtSignal()
    retrain_requested = pyqtSignal()

    def __init__(self, dock, layer_name, corrections_label=None):
        super().__init__()
        self.dock = dock
        self.layer_name = layer_name
        self.layer_id = None
        self.points, self.scores, self.labels, self.crs = [], [], [], None
        self.marks, self.corrections = {}, {}
        self.items = QListWidget()
        self.items.currentRowChanged.connect(self.show_match)
        self.right_button = QPushButton(self.tr("Right"))
        self.right_button.clicked.connect(lambda: self.mark_current(RIGHT))
        self.wrong_button = QPushButton(self.tr("Wrong"))
        self.wrong_button.clicked.connect(lambda: self.mark_current(WRONG))
        self.unmark_button = QPushButton(self.tr("Unmark"))
        self.unmark_button.clicked.connect(lambda: self.mark_current(None))
        self.map_button = QPushButton(self.tr("Mark on the map"))
        self.map_button.setCheckable(True)
        self.map_button.setToolTip(self.tr("Click near a match: right, click again: wrong, once more: unmarked"))
        self.tool = ReviewTool(dock.canvas)
        self.tool.clicked.connect(self.toggle_near)
        self.map_button.toggled.connect(lambda on: use_tool(self.dock.canvas, self.tool, on))
        self.tool.deactivated.connect(lambda: self.map_button.setChecked(False))
        self.correction = QComboBox() if corrections_label else None
        self.retrain_button = QPushButton(self.tr("Retrain with the marks"))
        self.retrain_button.clicked.connect(self.retrain_requested.emit)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.items, 1)
        row = QHBoxLayout()
        for button in (self.right_button, self.wrong_button, self.unmark_button, self.map_button):
            row.addWidget(button)
        layout.addLayout(row)
        if self.correction is not None:
            row = QHBoxLayout()
            row.addWidget(QLabel(corrections_label))
            row.addWidget(self.correction, 1)
            layout.addLayout(row)
        layout.addWidget(self.retrain_button)
        self._enable()

    # --- the matches ---------------------------------------------------------------------------------

    def set_matches(self, points, scores, crs, labels=None):
        """Show new matches (QgsPointXY in crs, best first); earlier marks are dropped."""
        self.points, self.scores, self.crs = list(points), [float(s) for s in scores], crs
        self.labels = list(labels) if labels is not None else [""] * len(self.points)
        self.marks, self.corrections = {}, {}
        self.items.blockSignals(True)
        self.items.clear()
        for index in range(len(self.points)):
            self.items.addItem(QListWidgetItem(self._text(index)))
        self.items.blockSignals(False)
        self._enable()
        self._draw()
        self.changed.emit()

    def set_corrections(self, names):
        """The choices a wrong mark can take (the other classes)."""
        if self.correction is not None:
            self.correction.clear()
            self.correction.addItems(list(names))

    def count(self):
        return len(self.points)

    def marked(self, mark):
        """[(point in crs, correction or label)] of the matches with this mark, in list order."""
        chosen = [i for i in range(len(self.points)) if self.marks.get(i) == mark]
        return [(self.points[i], self.corrections.get(i, self.labels[i])) for i in chosen]

    def _text(self, index):
        mark = self.marks.get(index)
        label = f"  {self.labels[index]}" if self.labels[index] else ""
        if mark == WRONG and index in self.corrections:
            note = f"  - wrong: {self.corrections[index]}"
        else:
            note = f"  - {mark}" if mark else ""
        return f"{index + 1}. {self.scores[index]:+.3f}{label}{note}"

    def _enable(self):
        has = bool(self.points)
        for button in (self.right_button, self.wrong_button, self.unmark_button, self.map_button):
            button.setEnabled(has)

    # --- marking -------------------------------------------------------------------------------------

    def mark(self, index, mark):
        """Set a match's mark (RIGHT, WRONG or None); a wrong mark takes the correction chosen in the panel."""
        if not 0 <= index < len(self.points):
            return
        self.corrections.pop(index, None)
        if mark is None:
            self.marks.pop(index, None)
        else:
            self.marks[index] = mark
            if mark == WRONG and self.correction is not None and self.correction.currentText():
                self.corrections[index] = self.correction.currentText()
        self.items.item(index).setText(self._text(index))
        self._draw()
        self.changed.emit()

    def mark_current(self, mark):
        self.mark(self.items.currentRow(), mark)

    def toggle_near(self, point):
        """A click on the map (canvas CRS): the nearest match within a few screen pixels goes to its next mark."""
        index = self.nearest(point)
        if index is None:
            return None
        self.items.setCurrentRow(index)
        self.mark(index, NEXT_MARK[self.marks.get(index)])
        return index

    def nearest(self, point):
        canvas = self.dock.canvas
        tolerance = CLICK_TOLERANCE_PX * canvas.mapUnitsPerPixel()
        best, best_distance = None, tolerance
        for index, where in enumerate(self._in_canvas_crs()):
            distance = where.distance(point)
            if distance <= best_distance:
                best, best_distance = index, distance
        return best

    def _in_canvas_crs(self):
        canvas_crs = self.dock.canvas.mapSettings().destinationCrs()
        if self.crs is None or self.crs == canvas_crs:
            return list(self.points)
        transform = QgsCoordinateTransform(self.crs, canvas_crs, QgsProject.instance())
        return [transform.transform(p) for p in self.points]

    def show_match(self, index):
        """Pan the map to the selected match and flash it."""
        if not 0 <= index < len(self.points):
            return
        canvas = self.dock.canvas
        where = self._in_canvas_crs()[index]
        canvas.setCenter(where)
        canvas.refresh()
        canvas.flashGeometries([QgsGeometry.fromPointXY(where)], canvas.mapSettings().destinationCrs())

    # --- drawing the marks -----------------------------------------------------------------------------

    def marks_layer(self):
        return live(self.layer_id)

    def _draw(self):
        """Every match on the map: green right, red wrong, yellow not yet marked."""
        layer = live(self.layer_id)
        if layer is not None and (self.crs is None or layer.crs() != self.crs):
            QgsProject.instance().removeMapLayer(layer.id())
            layer = None
        if layer is None:
            if not self.points:
                return
            layer = memory_layer(self.layer_name, "Point", self.crs, [MARK_FIELD])
            categories = []
            for mark, colour in COLOURS.items():
                symbol = QgsSymbol.defaultSymbol(GEOMETRY_POINT)
                symbol.setColor(colour)
                symbol.setSize(3.0 if mark == OPEN else 4.0)
                categories.append(QgsRendererCategory(mark, symbol, mark))
            layer.setRenderer(QgsCategorizedSymbolRenderer(MARK_FIELD, categories))
            QgsProject.instance().addMapLayer(layer)
            self.layer_id = layer.id()
        clear(layer)
        for index, point in enumerate(self.points):
            add_point(layer, point, [self.marks.get(index) or OPEN])

    def unload(self):
        canvas = self.dock.canvas
        if canvas.mapTool() is self.tool:
            canvas.unsetMapTool(self.tool)


class BackgroundCall:
    """function(is_cancelled) run in a QgsTask; done(result) or the error's first line in the message bar afterwards.

    .done tells when it is over (tests wait on it). The object must be kept while the task runs.
    """

    def __init__(self, dock, description, function, done):
        self.done = False
        self.ok = False
        self.result = None
        self.task = QgsTask.fromFunction(description, lambda task: function(task.isCanceled), on_finished=self._finished)
        self._dock, self._on_done = dock, done
        QgsApplication.taskManager().addTask(self.task)

    def _finished(self, exception, result=None):
        try:
            if exception is not None:
                text = str(exception).strip().splitlines()
                self._dock.tell(text[0] if text else type(exception).__name__)
            else:
                self._on_done(result)
        finally:
            self.done, self.ok, self.result = True, exception is None, result
