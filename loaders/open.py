"""Open any embedding input as an EmbeddingRaster: a layer made by geoembed:load, a product's own files, or any
other multi-band raster (the generic product)."""

import os
import tempfile

from .errors import GeoEmbedError, RemoteError
from .limits import ImplausibleFile
from .raster.embedding_tiff import EmbeddingTiff
from .raster.gdal_io import open_raster
from .raster.grid import Window
from .remote.locations import is_url


def open_embeddings(source, log, product="auto", client=None, allow_paths_outside_mirror=False):
    """A north-up, de-quantised EmbeddingRaster over SOURCE, read block by block.

    A GeoTIFF written by geoembed:load is read directly; anything else goes through the product
    loaders (an AEF tile is oriented and de-quantised, a Tessera folder or Earth Engine export pieces
    mosaicked) on the files' own grid, the generic product last (any raster of two or more bands).
    """
    from .load import LoadRequest, plan  # load imports every product module: keep this import lazy

    if not source:
        raise GeoEmbedError("INPUT is empty; give an embedding layer or a product file.")
    if not is_url(source) and not os.path.exists(source):
        raise GeoEmbedError(f"INPUT {source} does not exist; give an embedding layer or a product file.")
    if _made_by_geoembed(source):
        return EmbeddingTiff(source)
    scratch = os.path.join(tempfile.gettempdir(), "geoembed-input.tif")
    request = LoadRequest(output=scratch, product=product, source=source, allow_paths_outside_mirror=allow_paths_outside_mirror)
    _, raster = plan(request, log, client)
    return raster


def _made_by_geoembed(source):
    if not source.lower().endswith((".tif", ".tiff")):
        return False
    try:
        dataset = open_raster(source)
    except (RemoteError, ImplausibleFile):
        raise  # unreachable, refused or implausible: trying again through the product loaders would only repeat it
    except GeoEmbedError:
        return False
    return bool((dataset.GetMetadata() or {}).get("GEOEMBED_PRODUCT"))


class RasterTile:
    """An EmbeddingRaster seen through the tile protocol of mosaic.py (to resample it onto another grid)."""

    def __init__(self, raster):
        self.raster = raster
        self.location = getattr(raster, "location", "input")
        self.crs = raster.grid.crs
        self.geotransform = raster.grid.geotransform
        self.width, self.height = raster.grid.width, raster.grid.height
        self.bounds = raster.grid.bounds

    def read(self, col, row, width, height):
        block = self.raster.read(Window(int(col), int(row), int(width), int(height)))
        return block.values, block.valid

    def close(self):
        self.raster.close()
