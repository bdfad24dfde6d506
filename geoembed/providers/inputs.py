"""Turning Processing inputs into the loaders' model: embedding rasters and vector features in their CRS."""

import os

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsProcessingException,
    QgsWkbTypes,
)

from ..loaders.open import open_embeddings
from ..loaders.remote import is_url


def input_path(algorithm, parameters, name, context):
    """The file, folder or URL behind an INPUT value (a project layer, a layer id or a path)."""
    value = parameters.get(name)
    if isinstance(value, str) and (os.path.isdir(value) or is_url(value)):
        return value
    layer = algorithm.parameterAsRasterLayer(parameters, name, context)
    if layer is not None:
        return layer.source().split("|")[0]
    return algorithm.parameterAsString(parameters, name, context)


def open_input(algorithm, parameters, context, log, name="INPUT"):
    return open_embeddings(input_path(algorithm, parameters, name, context), log)


def qgis_crs(crs):
    """A QgsCoordinateReferenceSystem for the loaders' CRS strings ('EPSG:n' or WKT)."""
    result = QgsCoordinateReferenceSystem(crs) if crs.upper().startswith("EPSG:") else QgsCoordinateReferenceSystem.fromWkt(crs)
    if not result.isValid():
        raise QgsProcessingException(f"QGIS does not know the CRS {crs[:60]}.")
    return result


def features_in(source, crs, context, feedback=None):
    """[(feature, ("point", (x, y)) | ("polygon", [rings]))] for every feature, in the raster's CRS.

    Multi-points give one entry per point; multi-polygons one entry with all their rings.
    """
    import numpy as np

    transform = QgsCoordinateTransform(source.sourceCrs(), qgis_crs(crs), context.transformContext())
    out = []
    for feature in source.getFeatures():
        if feedback is not None and feedback.isCanceled():
            break
        geometry = feature.geometry()
        if geometry.isNull() or geometry.isEmpty():
            continue
        geometry.transform(transform)
        kind = QgsWkbTypes.geometryType(geometry.wkbType())
        if kind == QgsWkbTypes.PointGeometry:
            points = geometry.asMultiPoint() if geometry.isMultipart() else [geometry.asPoint()]
            out.extend((feature, ("point", (p.x(), p.y()))) for p in points)
        elif kind == QgsWkbTypes.PolygonGeometry:
            polygons = geometry.asMultiPolygon() if geometry.isMultipart() else [geometry.asPolygon()]
            rings = [np.array([(p.x(), p.y()) for p in ring]) for polygon in polygons for ring in polygon if len(ring) > 3]
            if rings:
                out.append((feature, ("polygon", rings)))
    return out
