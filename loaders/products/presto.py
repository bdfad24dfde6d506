"""Presto embeddings for Togo (NASA Harvest): uint16, 128 bands, EPSG:25231 (Lome datum, kept as is).

No de-quantisation is published, so the raw uint16 values are written and the metadata says so.
"""

import re

from osgeo import gdal

from .. import catalog
from ..raster.geotiff_tile import band_problem, nonzero_valid
from .pixel_geotiff import header_matches, plan_geotiffs
from .sources import find_files

PRODUCT = catalog.PRESTO
BAND_NAMES = tuple(f"b{i}" for i in range(128))
NAME = re.compile(r"^Togo_Presto_embeddings_.*\.tiff?$", re.IGNORECASE)
NOTE = "No de-quantisation is published for Presto: values are the raw uint16 numbers of the files (not rescaled)."


def expect(dataset):
    return band_problem(dataset, 128, gdal.GDT_UInt16)


def recognise_source(source):
    files = find_files(source, NAME)
    if files:
        return f"{len(files)} Presto file(s) named Togo_Presto_embeddings_*"
    if source and source.lower().endswith((".tif", ".tiff")) and header_matches(source, _expect_togo):
        return "128 UInt16 bands in EPSG:25231 (Lome / UTM 31N)"
    return None


def _expect_togo(dataset):
    srs = dataset.GetSpatialRef()
    return expect(dataset) or (None if srs is not None and srs.GetAuthorityCode(None) == "25231" else "not EPSG:25231")


def plan(request, log, client=None):
    log.info(NOTE)
    return plan_geotiffs(
        request,
        log,
        PRODUCT,
        NAME,
        "Togo_Presto_embeddings_*.tif files",
        nonzero_valid,
        expect,
        BAND_NAMES,
        utm_default=False,
        notes=[NOTE],
        year=PRODUCT.years[0],
    )
