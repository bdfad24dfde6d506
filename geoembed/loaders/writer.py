"""Block-by-block GeoTIFF writing of an EmbeddingRaster: north-up, tiled, compressed, Float32.

The file is written under a temporary name beside the destination and renamed only when complete,
so an error or a cancel never leaves a half-written output.
"""

import json
import os

import numpy as np
from osgeo import gdal

from .. import __about__
from .errors import Cancelled, GeoEmbedError
from .gdal_io import crs_wkt, gdal_errors
from .model import NODATA

BLOCK = 512  # pixels per side of the blocks read and written at once (64 bands x 512^2 float32 = 64 MiB)
GEOTIFF_EXTENSIONS = (".tif", ".tiff")


def compression():
    options = gdal.GetDriverByName("GTiff").GetMetadataItem("DMD_CREATIONOPTIONLIST") or ""
    return "ZSTD" if "ZSTD" in options else "DEFLATE"


def creation_options():
    return [
        "TILED=YES",
        "BLOCKXSIZE=256",
        "BLOCKYSIZE=256",
        f"COMPRESS={compression()}",
        "ZSTD_LEVEL=1",  # fast; higher levels cost much time for little size on Float32 embeddings
        "PREDICTOR=3",
        "NUM_THREADS=ALL_CPUS",
        "INTERLEAVE=BAND",  # QGIS draws 3 bands; band interleave lets it skip the other 61
        "BIGTIFF=IF_SAFER",
    ]


def check_destination(path):
    """Refuse destinations we cannot write before any work is done."""
    if not str(path).lower().endswith(GEOTIFF_EXTENSIONS):
        raise GeoEmbedError(f"OUTPUT must be a GeoTIFF (.tif), got {os.path.basename(str(path))}.")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    if not os.access(folder, os.W_OK):
        raise GeoEmbedError(f"Cannot write to {folder}; choose another OUTPUT folder.")


def provenance_metadata(provenance):
    meta = {
        "GEOEMBED_PRODUCT": provenance.product,
        "GEOEMBED_PRODUCT_NAME": provenance.product_name,
        "GEOEMBED_DEQUANTIZATION": provenance.dequantization,
        "GEOEMBED_RESAMPLING": provenance.resampling,
        "GEOEMBED_LICENCE": provenance.licence,
        "GEOEMBED_ATTRIBUTION": provenance.attribution,
        "GEOEMBED_SOURCES": json.dumps(provenance.sources),
        "GEOEMBED_VERSION": __about__.__version__,
    }
    if provenance.year is not None:
        meta["GEOEMBED_YEAR"] = str(provenance.year)
    if provenance.notes:
        meta["GEOEMBED_NOTES"] = " ".join(provenance.notes)
    return meta


def write_geotiff(raster, path, progress=None, is_cancelled=None, block=BLOCK):
    """Write every block of raster to path; returns path. progress(fraction) and is_cancelled() are optional."""
    check_destination(path)
    grid = raster.grid
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)), f".{os.path.basename(path)}.{os.getpid()}.partial.tif")
    dataset = None
    try:
        with gdal_errors() as messages:
            dataset = gdal.GetDriverByName("GTiff").Create(
                tmp, grid.width, grid.height, raster.band_count, gdal.GDT_Float32, creation_options()
            )
        if dataset is None:
            raise GeoEmbedError(f"Cannot create {path}: {messages[-1] if messages else 'GDAL refused'}.")
        dataset.SetGeoTransform(grid.geotransform)
        dataset.SetProjection(crs_wkt(grid.crs))
        dataset.SetMetadata(provenance_metadata(raster.provenance))
        dataset.SetMetadataItem("AREA_OR_POINT", "Area")
        bands = [dataset.GetRasterBand(i + 1) for i in range(raster.band_count)]
        for band, name in zip(bands, raster.band_names):
            band.SetDescription(name)
            band.SetNoDataValue(NODATA)
        total = sum(1 for _ in grid.blocks(block))
        for done, (window, data) in enumerate(raster.blocks(block), start=1):
            if is_cancelled and is_cancelled():
                raise Cancelled()
            values = data.values
            np.copyto(values, np.float32(NODATA), where=~data.valid[np.newaxis])
            for index, band in enumerate(bands):
                band.WriteArray(np.ascontiguousarray(values[index]), window.col, window.row)
            if progress:
                progress(done / total)
        with gdal_errors() as messages:
            dataset.FlushCache()
            dataset = None
        if messages:
            raise GeoEmbedError(f"Writing {path} failed: {messages[-1]}.")
        if os.path.exists(path + ".aux.xml"):
            os.remove(path + ".aux.xml")  # stale statistics of a previous file
        os.replace(tmp, path)
    except BaseException:
        dataset = None
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path
