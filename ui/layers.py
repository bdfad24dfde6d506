"""Project layers the dock panel keeps: example and label layers in memory, and finding the layers a run added."""

import math
import os

from qgis.core import (
    QgsCategorizedSymbolRenderer,
    QgsCoordinateTransform,
    QgsFeature,
    QgsField,
    QgsGeometry,
    QgsPointXY,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
    QgsRendererCategory,
    QgsSymbol,
    QgsVectorLayer,
)
from qgis.PyQt.QtGui import QColor

from ..qgis_compat import FIELD_STRING, GEOMETRY_POLYGON

CLASS_FIELD = "class"


def memory_layer(name, geometry, crs, fields=()):
    """A new in-memory vector layer ('Point' or 'Polygon') in crs (a QgsCoordinateReferenceSystem)."""
    layer = QgsVectorLayer(f"{geometry}?crs={crs.authid() or 'wkt:' + crs.toWkt()}", name, "memory")
    layer.dataProvider().addAttributes([QgsField(field, FIELD_STRING) for field in fields])
    layer.updateFields()
    return layer


def live(layer_id):
    """The project layer with this id, or None when the user removed it."""
    return QgsProject.instance().mapLayer(layer_id) if layer_id else None


def layers_with_source(path):
    """Project layers whose data source is the file at path."""
    wanted = os.path.normcase(os.path.abspath(path))
    found = []
    for layer in QgsProject.instance().mapLayers().values():
        source = layer.source().split("|")[0]
        if source and os.path.normcase(os.path.abspath(source)) == wanted:
            found.append(layer)
    return found


def add_point(layer, point, attributes=()):
    add_geometry(layer, QgsGeometry.fromPointXY(point), attributes)


def add_geometry(layer, geometry, attributes=()):
    feature = QgsFeature(layer.fields())
    feature.setGeometry(geometry)
    feature.setAttributes(list(attributes))
    layer.dataProvider().addFeatures([feature])
    layer.updateExtents()
    layer.triggerRepaint()


def clear(layer):
    layer.dataProvider().truncate()
    layer.triggerRepaint()


def to_layer_crs(point, source_crs, layer):
    """A point given in source_crs, in the layer's CRS."""
    if source_crs == layer.crs():
        return QgsPointXY(point)
    transform = QgsCoordinateTransform(source_crs, layer.crs(), QgsProject.instance())
    return transform.transform(point)


def colour_by_class(layer, classes):
    """Categorised style: one colour per class name (classes: [(name, QColor)])."""
    categories = []
    for name, colour in classes:
        symbol = QgsSymbol.defaultSymbol(layer.geometryType())
        symbol.setColor(QColor(colour))
        if layer.geometryType() == GEOMETRY_POLYGON:
            symbol.setOpacity(0.6)
        categories.append(QgsRendererCategory(name, symbol, name))
    layer.setRenderer(QgsCategorizedSymbolRenderer(CLASS_FIELD, categories))
    layer.triggerRepaint()


def pixel_polygon(raster, point):
    """The footprint of the raster pixel containing point (in the raster's CRS), shrunk by 1 % so that only that
    pixel's centre lies inside it; None outside the raster."""
    if not isinstance(raster, QgsRasterLayer):
        return None
    extent = raster.extent()
    res_x, res_y = raster.rasterUnitsPerPixelX(), raster.rasterUnitsPerPixelY()
    col = math.floor((point.x() - extent.xMinimum()) / res_x)
    row = math.floor((extent.yMaximum() - point.y()) / res_y)
    if not (0 <= col < raster.width() and 0 <= row < raster.height()):
        return None
    x0, y1 = extent.xMinimum() + col * res_x, extent.yMaximum() - row * res_y
    margin_x, margin_y = 0.01 * res_x, 0.01 * res_y
    return QgsGeometry.fromRect(QgsRectangle(x0 + margin_x, y1 - res_y + margin_y, x0 + res_x - margin_x, y1 - margin_y))
