"""Copernicus-Embed: one 768-d vector per 0.25 degree cell of the ERA5 grid (721 x 1440), zeros = empty.

Two published forms: the GeoTIFF conversion (EPSG:4326, Affine(0.25, 0, -180.125, 0, -0.25, 90.125))
and the original embed_map_*.npz (array arr_0, (721, 1440, dims), no georeferencing). The npz is
georeferenced with the same grid (row 0 = 90 N, column 0 = 180 W, as the GeoTIFF conversion has it)
and only the rows of the extent are streamed out of it into a temporary GeoTIFF.
"""

import dataclasses
import math
import os
import re
import shutil
import tempfile
import zipfile

import numpy as np
from numpy.lib import format as npy_format
from osgeo import gdal, osr

from .. import catalog
from ..errors import GeoEmbedError
from ..limits import check_compression, check_npy_header
from ..raster.gdal_io import gdal_call
from ..raster.geotiff_tile import nonzero_valid
from ..raster.planning import extent_lonlat
from .pixel_geotiff import header_matches, plan_geotiffs
from .sources import find_files

PRODUCT = catalog.COPERNICUS_EMBED
GEOTRANSFORM = (-180.125, 0.25, 0.0, 90.125, 0.0, -0.25)
ROWS, COLS = 721, 1440
TIF = re.compile(r"^embed_map_.*\.tiff?$", re.IGNORECASE)
NPZ = re.compile(r"^embed_map_.*\.npz$", re.IGNORECASE)
FLOAT_DTYPES = (np.float16, np.float32, np.float64)


def band_names(tile):
    return tuple(f"CE{i:03d}" for i in range(tile.band_count))


def expect(dataset):
    band = dataset.GetRasterBand(1) if dataset.RasterCount else None
    gt = dataset.GetGeoTransform()
    if band is None or band.DataType != gdal.GDT_Float32 or abs(gt[1] - 0.25) > 1e-9:
        return "expected Float32 bands on the 0.25 degree grid"
    return None


def recognise_source(source):
    files = find_files(source, TIF) + find_files(source, NPZ)
    if files:
        return f"a Copernicus-Embed map ({os.path.basename(files[0])})"
    if source and source.lower().endswith((".tif", ".tiff")) and header_matches(source, _expect_full_map):
        return "a Float32 0.25 degree global map"
    return None


def _expect_full_map(dataset):
    return expect(dataset) or (None if (dataset.RasterXSize, dataset.RasterYSize) == (COLS, ROWS) else "not 1440 x 721")


def plan(request, log, client=None):
    _check_coverage(request)
    npz = [] if find_files(request.source, TIF) else find_files(request.source, NPZ)  # the georeferenced tif wins
    scratch = None
    if npz:
        scratch = tempfile.mkdtemp(prefix=".geoembed-npz-", dir=os.path.dirname(os.path.abspath(request.output)))
        request = dataclasses.replace(request, source=npz_window_to_geotiff(npz[0], extent_lonlat(request), scratch))
        log.info(f"Read the rows of the extent from {os.path.basename(npz[0])} (npz has no georeferencing: ERA5 grid assumed).")
    try:
        mosaic = plan_geotiffs(
            request,
            log,
            PRODUCT,
            TIF,
            "embed_map_*.tif or embed_map_*.npz",
            nonzero_valid,
            expect,
            band_names,
            utm_default=False,
            notes=["All-zero vectors (empty cells, mostly ocean) are nodata."],
            year=None,
        )
    except BaseException:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
        raise
    if scratch:
        mosaic.on_close.append(lambda: shutil.rmtree(scratch, ignore_errors=True))
        mosaic.provenance.sources = [npz[0]]
    return mosaic


def _check_coverage(request):
    wgs84 = extent_lonlat(request)
    if wgs84 and (wgs84[2] <= -180 or wgs84[0] >= 180 or wgs84[3] <= -90 or wgs84[1] >= 90):
        raise GeoEmbedError(f"The extent {wgs84} is outside Copernicus-Embed's coverage (-180..180, -90..90).")


def npz_window_to_geotiff(npz_path, wgs84, folder):
    """Stream the rows of the extent out of arr_0 of the npz into folder/embed_map_window.tif; returns its path."""
    row0, row1, col0, col1 = _window(wgs84)
    path = os.path.join(folder, "embed_map_window.tif")
    try:
        with zipfile.ZipFile(npz_path) as archive:
            member = archive.getinfo(_member(archive, npz_path))
            check_compression(os.path.basename(npz_path), member.filename, member.compress_size, member.file_size)
            with archive.open(member) as stream:
                shape, dtype = _read_npy_header(stream, npz_path, member.file_size)
                dims = shape[2]
                dataset, messages = gdal_call(
                    gdal.GetDriverByName("GTiff").Create,
                    path,
                    col1 - col0,
                    row1 - row0,
                    dims,
                    gdal.GDT_Float32,
                    ["TILED=YES", "COMPRESS=DEFLATE", "INTERLEAVE=BAND"],
                )
                if dataset is None:
                    raise GeoEmbedError(f"Cannot create {path}: {messages[-1] if messages else 'GDAL gave no reason'}")
                dataset.SetGeoTransform((GEOTRANSFORM[0] + col0 * 0.25, 0.25, 0.0, GEOTRANSFORM[3] - row0 * 0.25, 0.0, -0.25))
                srs = osr.SpatialReference()
                srs.ImportFromEPSG(4326)
                dataset.SetProjection(srs.ExportToWkt())
                row_bytes = COLS * dims * dtype.itemsize
                _skip(stream, row0 * row_bytes)
                for row in range(row0, row1):
                    data = np.frombuffer(_read_exactly(stream, row_bytes, npz_path), dtype=dtype).reshape(COLS, dims)
                    window = np.ascontiguousarray(data[col0:col1].T.astype(np.float32))
                    status, messages = gdal_call(
                        dataset.WriteRaster, 0, row - row0, col1 - col0, 1, window.tobytes(), buf_type=gdal.GDT_Float32
                    )
                    if status != 0:
                        raise GeoEmbedError(f"Writing {path} failed: {messages[-1] if messages else 'GDAL gave no reason'}")
                dataset = None
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return path


def _window(wgs84):
    if wgs84 is None:
        return 0, ROWS, 0, COLS
    west, south, east, north = wgs84
    # One cell of margin: the output grid is the extent snapped outwards to whole cells.
    col0 = max(0, math.floor((west - GEOTRANSFORM[0]) / 0.25) - 1)
    col1 = min(COLS, math.ceil((east - GEOTRANSFORM[0]) / 0.25) + 1)
    row0 = max(0, math.floor((GEOTRANSFORM[3] - north) / 0.25) - 1)
    row1 = min(ROWS, math.ceil((GEOTRANSFORM[3] - south) / 0.25) + 1)
    return row0, max(row1, row0 + 1), col0, max(col1, col0 + 1)


def _member(archive, npz_path):
    names = archive.namelist()
    if "arr_0.npy" in names:
        return "arr_0.npy"
    if len(names) == 1:
        return names[0]
    raise GeoEmbedError(f"{os.path.basename(npz_path)} has no arr_0 array; is it the Copernicus-Embed map?")


def _read_npy_header(stream, npz_path, member_size):
    """(shape, dtype) of the npz member's array, checked (limits.check_npy_header) before any row is read: the header
    must not claim more bytes than the member holds, nor object values, nor more dimensions than an embedding has."""
    name = os.path.basename(npz_path)
    try:
        version = npy_format.read_magic(stream)
        reader = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
        shape, fortran, dtype = reader(stream)
    except (ValueError, SyntaxError, TypeError) as exc:
        raise GeoEmbedError(f"{name} holds no readable array header ({' '.join(str(exc).split())[:160]}).") from exc
    dtype = np.dtype(dtype)
    check_npy_header(name, shape, fortran, dtype, member_size - stream.tell(), ndim=3, dtypes=FLOAT_DTYPES)
    if shape[:2] != (ROWS, COLS):
        raise GeoEmbedError(f"{name} holds an array of shape {shape}; Copernicus-Embed maps are (721, 1440, dims).")
    return shape, dtype


def _skip(stream, count):
    while count > 0:
        chunk = stream.read(min(count, 1 << 24))
        if not chunk:
            raise GeoEmbedError("The npz ends early; the file is truncated.")
        count -= len(chunk)


def _read_exactly(stream, count, npz_path):
    data = stream.read(count)
    if len(data) != count:
        raise GeoEmbedError(f"{os.path.basename(npz_path)} ends early; the file is truncated.")
    return data
