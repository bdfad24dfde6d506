"""Turning Processing inputs into the loaders' model: embedding rasters and vector features in their CRS."""

import os

import numpy as np
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsCsException,
    QgsFeature,
    QgsGeometry,
    QgsProcessingException,
    QgsWkbTypes,
)

from ..loaders.errors import Cancelled
from ..loaders.open import open_embeddings
from ..loaders.remote.locations import is_url
from ..qgis_compat import GEOMETRY_POINT, GEOMETRY_POLYGON
from . import settings

VSICURL = "/vsicurl/"


def input_path(algorithm, parameters, name, context):
    """The file, folder or URL behind an INPUT value (a project layer, a layer id or a path)."""
    value = parameters.get(name)
    # A file path is handed over as it is: loading it as a QGIS layer first would read it (QGIS samples a new raster
    # layer for its styling) before the loaders have checked its header (loaders/limits.py).
    if isinstance(value, str) and (os.path.isdir(value) or is_url(value) or os.path.isfile(value)):
        return value
    layer = algorithm.parameterAsRasterLayer(parameters, name, context)
    if layer is not None:
        return layer_location(layer.source())
    return algorithm.parameterAsString(parameters, name, context)


def layer_location(source):
    """The file or URL a GDAL layer reads: options after '|' dropped, '/vsicurl/https://...' back to its URL
    (the loaders read URLs with their own range checks and retries); other paths, a .vrt too, stay as they are."""
    path = source.split("|")[0]
    remote = path[len(VSICURL) :] if path.startswith(VSICURL) else ""
    return remote if is_url(remote) else path


def open_input(algorithm, parameters, context, log, name="INPUT"):
    """The embeddings behind an INPUT; a mirror's index given as INPUT is confined to the mirror like geoembed:load's
    SOURCE, as the GeoEmbed setting says (analysis algorithms have no parameter for it)."""
    source = input_path(algorithm, parameters, name, context)
    return open_embeddings(source, log, allow_paths_outside_mirror=settings.allow_paths_outside_mirror())


def qgis_crs(crs):
    """A QgsCoordinateReferenceSystem for the loaders' CRS strings ('EPSG:n' or WKT)."""
    result = QgsCoordinateReferenceSystem(crs) if crs.upper().startswith("EPSG:") else QgsCoordinateReferenceSystem.fromWkt(crs)
    if not result.isValid():
        raise QgsProcessingException(f"QGIS does not know the CRS {crs[:60]}.")
    return result


def features_in(source, crs, context, feedback=None):
    """[(feature, ("point", (x, y)) | ("polygon", [rings]))] for every feature, in the raster's CRS.

    Multi-points give one entry per point, each with a copy of the feature holding just that point
    (in the source CRS); multi-polygons one entry with all their rings.
    """
    transform = QgsCoordinateTransform(source.sourceCrs(), qgis_crs(crs), context.transformContext())
    out, unplaceable = [], []
    for feature in source.getFeatures():
        if feedback is not None and feedback.isCanceled():
            raise Cancelled()
        geometry = feature.geometry()
        if geometry.isNull() or geometry.isEmpty():
            continue
        kind = QgsWkbTypes.geometryType(geometry.wkbType())
        try:
            if kind == GEOMETRY_POINT:
                parts = geometry.asMultiPoint() if geometry.isMultipart() else [geometry.asPoint()]
                for part in parts:
                    single = QgsFeature(feature)
                    single.setGeometry(QgsGeometry.fromPointXY(part))
                    moved = transform.transform(part)
                    out.append((single, ("point", (moved.x(), moved.y()))))
                continue
            geometry.transform(transform)
        except QgsCsException:  # coordinates that do not exist in the layer's CRS (e.g. metres labelled as degrees)
            unplaceable.append(feature.geometry().centroid().asPoint())
            continue
        if kind == GEOMETRY_POLYGON:
            polygons = geometry.asMultiPolygon() if geometry.isMultipart() else [geometry.asPolygon()]
            rings = [np.array([(p.x(), p.y()) for p in ring]) for polygon in polygons for ring in polygon if len(ring) > 3]
            if rings:
                out.append((feature, ("polygon", rings)))
    if unplaceable:
        first = unplaceable[0]
        message = (
            f"{len(unplaceable)} feature(s) have coordinates (e.g. {first.x():.6g}, {first.y():.6g}) that do not exist in "
            f"their layer's CRS {source.sourceCrs().authid() or source.sourceCrs().description()}; check the layer's CRS."
        )
        if not out:
            raise QgsProcessingException(message)
        if feedback is not None:
            feedback.pushWarning(message)
    return out
