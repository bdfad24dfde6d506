"""Map tools of the dock panel: clicking examples for similarity, and labelling points or polygons."""

from qgis.core import QgsGeometry, QgsPointXY, QgsWkbTypes
from qgis.gui import QgsMapToolEmitPoint, QgsRubberBand
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtGui import QColor

NEW, ADD, NEGATIVE = "new", "add", "negative"


def click_mode(modifiers):
    """What a click means: Shift adds an example, Alt adds a counter-example, a plain click starts over."""
    if modifiers & Qt.AltModifier:
        return NEGATIVE
    if modifiers & Qt.ShiftModifier:
        return ADD
    return NEW


class ExampleTool(QgsMapToolEmitPoint):
    """Emits picked(point in canvas CRS, mode) on every left click."""

    picked = pyqtSignal(QgsPointXY, str)

    def canvasReleaseEvent(self, event):  # noqa: N802 - QGIS API
        if event.button() == Qt.LeftButton:
            self.picked.emit(self.toMapCoordinates(event.pos()), click_mode(event.modifiers()))


class PointLabelTool(QgsMapToolEmitPoint):
    """Emits placed(point in canvas CRS) on every left click."""

    placed = pyqtSignal(QgsPointXY)

    def canvasReleaseEvent(self, event):  # noqa: N802 - QGIS API
        if event.button() == Qt.LeftButton:
            self.placed.emit(self.toMapCoordinates(event.pos()))


class PolygonLabelTool(QgsMapToolEmitPoint):
    """Left clicks add vertices (drawn as a rubber band); a right click closes the polygon and emits drawn(geometry).

    Escape or deactivating the tool drops an unfinished polygon.
    """

    drawn = pyqtSignal(QgsGeometry)

    def __init__(self, canvas):
        super().__init__(canvas)
        self.vertices = []
        self.band = QgsRubberBand(canvas, QgsWkbTypes.PolygonGeometry)
        self.band.setColor(QColor(255, 160, 0, 90))
        self.band.setStrokeColor(QColor(255, 120, 0))
        self.band.setWidth(2)

    def canvasReleaseEvent(self, event):  # noqa: N802 - QGIS API
        point = self.toMapCoordinates(event.pos())
        if event.button() == Qt.LeftButton:
            self.vertices.append(point)
            self.band.addPoint(point)
        elif event.button() == Qt.RightButton:
            if len(self.vertices) >= 3:
                self.drawn.emit(QgsGeometry.fromPolygonXY([self.vertices + [self.vertices[0]]]))
            self.reset()

    def keyPressEvent(self, event):  # noqa: N802 - QGIS API
        if event.key() == Qt.Key_Escape:
            self.reset()

    def reset(self):
        self.vertices = []
        self.band.reset(QgsWkbTypes.PolygonGeometry)

    def deactivate(self):
        self.reset()
        super().deactivate()

    def remove(self):
        """Take the rubber band off the canvas (on unload)."""
        self.reset()
        self.canvas().scene().removeItem(self.band)
