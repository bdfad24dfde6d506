"""Pixel products published as GeoTIFFs (Copernicus-Embed, Presto, ESD, Tessera exports): shared plan."""

from ..errors import GeoEmbedError, RemoteError
from ..limits import ImplausibleFile
from ..raster.gdal_io import open_raster
from ..raster.geotiff_tile import open_geotiff_tile
from ..raster.planning import build_mosaic, extent_lonlat, pick_year, tiles_under
from .sources import require_files


def plan_geotiffs(request, log, product, pattern, what, decode, expect, band_names, utm_default, notes=(), year=None):
    """Open the product's GeoTIFFs under SOURCE and mosaic the ones under the extent."""
    locations = require_files(request.source, pattern, what, product.name)
    tiles = [open_geotiff_tile(location, decode, expect, product.name) for location in locations]
    wgs84 = extent_lonlat(request)
    tiles = tiles_under(tiles, wgs84, product.name)
    if year is None:
        tiles, year = pick_year(tiles, request, log, product.name)
    names = band_names(tiles[0]) if callable(band_names) else band_names
    return build_mosaic(tiles, request, wgs84, product, names, year, log, utm_default=utm_default, notes=notes)


def header_matches(location, expect):
    """True when the raster at location opens and expect(dataset) finds no problem (for PRODUCT=auto)."""
    try:
        dataset = open_raster(location)
    except (RemoteError, ImplausibleFile):
        raise
    except GeoEmbedError:
        return False
    return expect(dataset) is None
