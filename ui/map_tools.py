"""Map tools of the dock panel: clicking examples for similarity, labelling points or polygons, marking matches."""

from qgis.core import QgsGeometry, QgsPointXY
from qgis.gui import QgsMapToolEmitPoint, QgsRubberBand
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtGui import QColor

from ..qgis_compat import GEOMETRY_POLYGON

NEW, ADD, NEGATIVE = "new", "add", "negative"


def use_tool(canvas, tool, on):
    """Make tool the canvas's map tool (on), or release it if it still is (off: another tool may have taken over)."""
    if on:
        canvas.setMapTool(tool)
    elif canvas.mapTool() is tool:
        canvas.unsetMapTool(tool)


def click_mode(modifiers):
    """What a click means: Shift adds an example, Alt adds a counter-example, a plain click starts over."""
    if modifiers & Qt.KeyboardModifier.AltModifier:
        return NEGATIVE
    if modifiers & Qt.KeyboardModifier.ShiftModifier:
        return ADD
    return NEW


class ExampleTool(QgsMapToolEmitPoint):
    """Emits picked(point in canvas CRS, mode) on every left click."""

    picked = pyqtSignal(QgsPointXY, str)

    def canvasReleaseEvent(self, event):  # noqa: N802 - QGIS API
        if event.button() == Qt.MouseButton.LeftButton:
            # the map point QGIS computed for the click (unsnapped); QMouseEvent.pos() is deprecated in Qt 6
            self.picked.emit(event.originalMapPoint(), click_mode(event.modifiers()))


class PointLabelTool(QgsMapToolEmitPoint):
    """Emits placed(point in canvas CRS) on every left click."""

    placed = pyqtSignal(QgsPointXY)

    def canvasReleaseEvent(self, event):  # noqa: N802 - QGIS API
        if event.button() == Qt.MouseButton.LeftButton:
            self.placed.emit(event.originalMapPoint())


class ReviewTool(QgsMapToolEmitPoint):
    """Emits clicked(point in canvas CRS) on every left click: the review list toggles the match nearest to it."""

    clicked = pyqtSignal(QgsPointXY)

    def canvasReleaseEvent(self, event):  # noqa: N802 - QGIS API
        if event.button() == Qt.MouseButton.LeftButton:
            self.clicked.emit(event.originalMapPoint())


class PolygonLabelTool(QgsMapToolEmitPoint):
    """Left clicks add vertices (drawn as a rubber band); a right click closes the polygon and emits drawn(geometry).

    Escape or deactivating the tool drops an unfinished polygon.
    """

    drawn = pyqtSignal(QgsGeometry)

    def __init__(self, canvas):
        super().__init__(canvas)
        self.vertices = []
        self.band = QgsRubberBand(canvas, GEOMETRY_POLYGON)
        self.band.setColor(QColor(255, 160, 0, 90))
        self.band.setStrokeColor(QColor(255, 120, 0))
        self.band.setWidth(2)

    def canvasReleaseEvent(self, event):  # noqa: N802 - QGIS API
        point = event.originalMapPoint()
        if event.button() == Qt.MouseButton.LeftButton:
            self.vertices.append(point)
            self.band.addPoint(point)
        elif event.button() == Qt.MouseButton.RightButton:
            if len(self.vertices) >= 3:
                self.drawn.emit(QgsGeometry.fromPolygonXY([self.vertices + [self.vertices[0]]]))
            self.reset()

    def keyPressEvent(self, event):  # noqa: N802 - QGIS API
        if event.key() == Qt.Key.Key_Escape:
            self.reset()

    def reset(self):
        self.vertices = []
        self.band.reset(GEOMETRY_POLYGON)

    def deactivate(self):
        self.reset()
        super().deactivate()

    def remove(self):
        """Take the rubber band off the canvas (on unload)."""
        self.reset()
        self.canvas().scene().removeItem(self.band)
