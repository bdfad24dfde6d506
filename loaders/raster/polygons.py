"""Polygons of the objects of a label raster (value = object id, 0 = none), handed out in id order.

The label raster's connectivity is already in its ids (analysis/detect.py joins 8-connected pixels under one id when
asked), so GDAL polygonizes it 4-connected: every polygon is then valid (GDAL's 8-connected rings touch themselves at
diagonal corners, which GEOS calls invalid), and the pieces of an 8-connected object that meet only at a corner are
gathered into one MultiPolygon. Either way the polygons cover exactly the object's pixels, holes included.

The polygons go to a scratch GeoPackage with an index on the id, so that they are read back in id order without
holding them all in memory.
"""

import os

from osgeo import gdal, ogr, osr

from ..errors import Cancelled, GeoEmbedError
from .gdal_io import gdal_call

LAYER = "objects"
FIELD = "object"


def polygonize(label_path, gpkg_path, progress=None, is_cancelled=None):
    """Polygons of every nonzero id of the label raster into a new GeoPackage (gpkg_path must not exist)."""
    labels, messages = gdal_call(gdal.Open, label_path)
    if labels is None:
        raise GeoEmbedError(f"Cannot read the scratch label raster: {_last(messages)}.")
    band = labels.GetRasterBand(1)
    driver = ogr.GetDriverByName("GPKG")
    target, messages = gdal_call(driver.CreateDataSource, gpkg_path)
    if target is None:
        raise GeoEmbedError(f"Cannot create a scratch GeoPackage in {os.path.dirname(gpkg_path)}: {_last(messages)}.")
    try:
        srs = osr.SpatialReference(wkt=labels.GetProjection())
        layer = target.CreateLayer(LAYER, srs, ogr.wkbPolygon, ["SPATIAL_INDEX=NO"])
        layer.CreateField(ogr.FieldDefn(FIELD, ogr.OFTInteger))
        cancelled = []

        def callback(fraction, _message, _data):
            if is_cancelled and is_cancelled():
                cancelled.append(True)
                return 0
            if progress:
                progress(fraction)
            return 1

        layer.StartTransaction()
        status, messages = gdal_call(gdal.Polygonize, band, band.GetMaskBand(), layer, 0, [], callback=callback)
        if cancelled:
            raise Cancelled()
        if status != 0:
            raise GeoEmbedError(f"Turning the objects into polygons failed: {_last(messages)}; check the free disk space.")
        if layer.CommitTransaction() != 0:
            raise GeoEmbedError("Writing the scratch polygons failed; check the free disk space.")
        target.ExecuteSQL(f"CREATE INDEX {LAYER}_{FIELD} ON {LAYER} ({FIELD})")
    finally:
        target = labels = None
    return gpkg_path


def objects_in_order(gpkg_path):
    """(id, ogr MultiPolygon) per object, ids ascending; the GeoPackage is read as it goes."""
    source, messages = gdal_call(ogr.Open, gpkg_path)
    if source is None:
        raise GeoEmbedError(f"Cannot read the scratch polygons: {_last(messages)}.")
    result = source.ExecuteSQL(f"SELECT {FIELD}, geom FROM {LAYER} ORDER BY {FIELD}, fid")
    try:
        current, parts = None, None
        for feature in result:
            value = feature.GetField(0)
            if value != current:
                if parts is not None:
                    yield current, parts
                current, parts = value, ogr.Geometry(ogr.wkbMultiPolygon)
            parts.AddGeometry(feature.GetGeometryRef())
        if parts is not None:
            yield current, parts
    finally:
        source.ReleaseResultSet(result)
        source = None


def _last(messages):
    return messages[-1].rstrip(".") if messages else "GDAL gave no reason"
