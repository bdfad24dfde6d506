"""Embedded Seamless Data (SDC30 EBD): 30 m, 12 monthly uint16 FSQ codes (+ a QA band) per pixel.

Each code decodes to 6 values with levels (8, 8, 8, 5, 5, 5), giving 72 values per pixel, in
month-major order (band M01_0 .. M12_5).
"""

import re

import numpy as np
from osgeo import gdal

from .. import catalog
from ..raster.geotiff_tile import band_problem
from .pixel_geotiff import plan_geotiffs
from .sources import find_files

PRODUCT = catalog.ESD
LEVELS = np.array([8, 8, 8, 5, 5, 5], dtype=np.int64)
BASIS = np.concatenate([[1], np.cumprod(LEVELS[:-1])])  # 1, 8, 64, 512, 2560, 12800
MONTHS = 12
BAND_NAMES = tuple(f"M{month:02d}_{k}" for month in range(1, MONTHS + 1) for k in range(len(LEVELS)))
NAME = re.compile(r"^SDC30_EBD_V\d+_\w+_\d{4}\.tiff?$", re.IGNORECASE)


def fsq_decode(codes):
    """(months, ...) uint16 codes -> (months * 6, ...) float32 values in [-1, 1]."""
    codes = np.asarray(codes).astype(np.int64)
    shape = (1, len(LEVELS)) + (1,) * (codes.ndim - 1)
    levels = (codes[:, np.newaxis] // BASIS.reshape(shape)) % LEVELS.reshape(shape)
    half = (LEVELS // 2).reshape(shape)
    values = (levels - half) / half
    return values.reshape((-1,) + codes.shape[1:]).astype(np.float32)


def decode(raw):
    codes = raw[:MONTHS]
    return fsq_decode(codes), (codes != 0).any(axis=0)


def expect(dataset):
    return band_problem(dataset, MONTHS, gdal.GDT_UInt16, at_least=True)  # 12 monthly codes (+ a QA band)


def recognise_source(source):
    files = find_files(source, NAME)
    if files:
        return f"{len(files)} ESD file(s) named SDC30_EBD_*"
    return None


def plan(request, log, client=None):
    return plan_geotiffs(
        request,
        log,
        PRODUCT,
        NAME,
        "SDC30_EBD_V001_{MGRS}_{year}.tif files",
        decode,
        expect,
        BAND_NAMES,
        utm_default=True,
        notes=["12 monthly FSQ codes decoded to 6 values each (band 13, QA, is not included)."],
    )
