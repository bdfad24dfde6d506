"""A PNG quicklook of an embedding raster: PCA false colour, rendered by QGIS's own map renderer."""

import os
import tempfile

from osgeo import gdal
from qgis.core import QgsMapRendererCustomPainterJob, QgsMapSettings, QgsMultiBandColorRenderer, QgsRasterLayer
from qgis.PyQt.QtCore import QSize
from qgis.PyQt.QtGui import QColor, QImage, QPainter

from ..analysis.pca import pca_rgb
from ..loaders.errors import GeoEmbedError
from ..loaders.raster.embedding_tiff import EmbeddingTiff
from ..loaders.raster.gdal_io import crs_wkt
from ..loaders.remote.locations import atomic_file

MAX_SIZE = 800
MIN_SIZE = 512  # small rasters are drawn larger, pixel by pixel


def render_quicklook(raster_path, png_path, max_size=MAX_SIZE):
    """Write png_path (atomically) and return it."""
    raster = EmbeddingTiff(raster_path)
    block, grid = raster.read_decimated(max_size)
    raster.close()
    rgb = pca_rgb(block.values, block.valid)
    with tempfile.TemporaryDirectory(prefix="geoembed-quicklook-") as folder:
        rgba_path = os.path.join(folder, "rgba.tif")
        _write_rgba(rgba_path, rgb, block.valid, grid)
        layer = QgsRasterLayer(rgba_path, "quicklook", "gdal")
        if not layer.isValid():
            raise GeoEmbedError("QGIS could not open the quicklook composite.")
        renderer = QgsMultiBandColorRenderer(layer.dataProvider(), 1, 2, 3)
        renderer.setAlphaBand(4)
        layer.setRenderer(renderer)
        zoom = max(1.0, MIN_SIZE / max(grid.width, grid.height))
        image = _render(layer, QSize(round(grid.width * zoom), round(grid.height * zoom)))
        del layer
    if not png_path.lower().endswith(".png"):
        png_path += ".png"
    with atomic_file(png_path) as tmp:
        if not image.save(tmp, "PNG"):
            raise GeoEmbedError(f"Cannot write the quicklook {png_path}.")
    return png_path


def _write_rgba(path, rgb, valid, grid):
    dataset = gdal.GetDriverByName("GTiff").Create(path, grid.width, grid.height, 4, gdal.GDT_Byte)
    dataset.SetGeoTransform(grid.geotransform)
    dataset.SetProjection(crs_wkt(grid.crs))
    for index in range(3):
        dataset.GetRasterBand(index + 1).WriteArray(rgb[index])
    dataset.GetRasterBand(4).WriteArray(valid.astype("uint8") * 255)
    dataset = None


def _render(layer, size):
    settings = QgsMapSettings()
    settings.setLayers([layer])
    settings.setDestinationCrs(layer.crs())
    settings.setOutputSize(size)
    settings.setExtent(layer.extent())
    settings.setBackgroundColor(QColor(255, 255, 255, 0))
    image = QImage(size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(QColor(255, 255, 255, 0))
    painter = QPainter(image)
    job = QgsMapRendererCustomPainterJob(settings, painter)
    job.renderSynchronously()
    painter.end()
    return image
