"""What the panel's review loop lists after a classification: a class's most confident pixels."""

import numpy as np
from osgeo import gdal

from ..loaders.errors import Cancelled, GeoEmbedError
from ..loaders.raster.gdal_io import gdal_call
from .similarity import TopK

ROWS_PER_READ = 256  # bounded memory whatever the raster's size


def most_confident(classes_path, confidence_path, class_value, count, is_cancelled=None):
    """(scores, rows, cols) of the count pixels of class_value with the highest confidence, best first (ties: north,
    then west), read block by block from the outputs of geoembed:train / classify."""
    classes, confidence = _open(classes_path), _open(confidence_path)
    if (classes.RasterXSize, classes.RasterYSize) != (confidence.RasterXSize, confidence.RasterYSize):
        raise GeoEmbedError("The class and confidence rasters differ in size; classify again.")
    top = TopK(count)
    width, height = classes.RasterXSize, classes.RasterYSize
    for row in range(0, height, ROWS_PER_READ):
        if is_cancelled is not None and is_cancelled():
            raise Cancelled()
        rows = min(ROWS_PER_READ, height - row)
        labels = _read(classes, row, rows, width, classes_path)
        scores = _read(confidence, row, rows, width, confidence_path).astype(np.float64)
        top.add(scores, (labels == class_value) & np.isfinite(scores), row, 0)
    return top.scores, top.rows, top.cols


def _open(path):
    dataset, messages = gdal_call(gdal.Open, str(path))
    if dataset is None:
        reason = messages[0] if messages else "GDAL cannot open it"
        raise GeoEmbedError(f"Cannot read {path} ({reason}); classify again.")
    return dataset


def _read(dataset, row, rows, width, path):
    values, messages = gdal_call(dataset.GetRasterBand(1).ReadAsArray, 0, row, width, rows)
    if values is None:
        raise GeoEmbedError(f"Cannot read {path} ({messages[0] if messages else 'read failed'}); classify again.")
    return values
