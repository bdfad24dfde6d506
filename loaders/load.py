"""geoembed:load without QGIS: a request in, a north-up Float32 GeoTIFF out."""

import os
import traceback
from contextlib import contextmanager
from dataclasses import dataclass

from . import catalog, products
from .errors import GeoEmbedError
from .model import Provenance
from .raster.grid import transform_bounds
from .raster.mosaic import TileMosaic
from .raster.overviews import OverviewTee
from .raster.writer import check_destination, in_row_pairs, write_geotiff
from .remote.locations import is_url


@dataclass
class LoadRequest:
    output: str
    product: str = "auto"
    source: str = None
    extent: tuple = None  # (xmin, ymin, xmax, ymax) in extent_crs
    extent_crs: str = "EPSG:4326"
    year: int = None
    crs: str = None
    resolution: float = None  # in the target CRS's units; default: the product's native resolution
    cache_dir: str = None
    allow_paths_outside_mirror: bool = False  # tile paths of an index may leave its folder or host (confinement.py)
    grid: object = None  # a raster.grid.Grid to write on instead of choosing one (several years on one grid)
    version: str = None  # a product's dataset version (Tessera: v1, v1.1, v2); None: the default or the only one found
    dimensions: int = None  # read only the first N dimensions (Matryoshka-ordered products: Tessera v2)
    overviews: bool = False  # embedding overviews (raster/overviews.py), computed from the blocks on their way out
    output_type: str = "float32"  # or "int16": AlphaEarth's exact 16-bit output (products/aef.py int16_storage)


@dataclass
class LoadResult:
    output: str
    product: str
    grid: object
    provenance: Provenance
    patches: object = None  # a PatchTable for patch products, else None


class PrintLog:
    """Default log for scripts."""

    def info(self, message):
        print(message)

    def warning(self, message):
        print("Warning:", message)


def detect_product(source, log=None):
    """(product id, reason) for PRODUCT=auto."""
    if source and not is_url(source) and not os.path.exists(source):
        raise GeoEmbedError(f"SOURCE {source} does not exist; give a product file, folder or http(s) URL.")
    for product_id, module in products.MODULES.items():
        with reading(source, log):
            reason = module.recognise_source(source)
        if reason:
            return product_id, reason
    valid = ", ".join(catalog.PRODUCTS)
    raise GeoEmbedError(f"Cannot recognise {source} as any supported product ({valid}); set PRODUCT or check SOURCE.")


def plan(request, log=None, client=None):
    """(product id, EmbeddingRaster) for a request; nothing is written."""
    log = log or PrintLog()
    product_id = request.product or "auto"
    if product_id == "auto":
        product_id, reason = detect_product(request.source, log)
        log.info(f"PRODUCT=auto: found {reason}, so reading it as {catalog.product(product_id).name} ({product_id}).")
    product = catalog.product(product_id)  # unknown ids get the list of valid ones
    for name, value in (("VERSION", request.version), ("DIMENSIONS", request.dimensions)):
        if value and product_id != catalog.TESSERA.id:  # only Tessera publishes versions and Matryoshka prefixes
            raise GeoEmbedError(f"{name} applies to Tessera only, not {product.name}; leave {name} empty.")
    if request.extent is not None:
        check_extent(request.extent, request.extent_crs)
    with reading(request.source, log, product.name):
        return product_id, products.MODULES[product_id].plan(request, log, client)


@contextmanager
def reading(source, log=None, product_name=None):
    """Turn an unexpected failure while reading a product (a damaged or unusual file) into one line naming the file and
    what failed; the traceback goes to the log's debug channel, when it has one, for a bug report."""
    try:
        yield
    except (GeoEmbedError, MemoryError, KeyboardInterrupt):
        raise
    except Exception as exc:
        debug = getattr(log, "debug", None)
        if debug is not None:
            debug(traceback.format_exc())
        name = os.path.basename(str(source).rstrip("/")) if source else "SOURCE"
        what = " ".join(str(exc).split()) or "no details"
        doing = f"read {name} as {product_name}" if product_name else f"tell which product {name} is"
        raise GeoEmbedError(
            f"Cannot {doing}: {type(exc).__name__}: {what[:200]}; check that the file is complete "
            "(download it again if it was cut short)."
        ) from exc


def check_extent(extent, extent_crs):
    """Refuse an extent that goes more than half way round the globe: that is what an extent crossing the
    antimeridian becomes once QGIS has ordered its corners (170..-170 is read as -170..170)."""
    west, _, east, _ = transform_bounds(extent_crs, "EPSG:4326", extent)
    if east - west > 180.0:
        raise GeoEmbedError(
            f"EXTENT spans {east - west:.1f} degrees of longitude: one that crosses the antimeridian (180°) is read "
            "the long way round; load each side of 180° separately and put them on one grid with geoembed:resample."
        )


OUTPUT_TYPES = ("float32", "int16")


def check_output_type(output_type, product_id):
    """Refuse an OUTPUT_TYPE that is unknown or that the product cannot be stored as (int16: AlphaEarth only)."""
    if (output_type or "float32") not in OUTPUT_TYPES:
        raise GeoEmbedError(f"OUTPUT_TYPE must be one of {', '.join(OUTPUT_TYPES)}, got {output_type}.")
    if output_type == "int16" and product_id not in ("auto", catalog.AEF.id):
        name = catalog.PRODUCTS[product_id].name if product_id in catalog.PRODUCTS else product_id
        raise GeoEmbedError(f"OUTPUT_TYPE=int16 is for AlphaEarth (aef) only, not {name}; use OUTPUT_TYPE=float32.")


def output_storage(request, product_id, raster):
    """The writer's Storage for request.output_type (None: Float32)."""
    check_output_type(request.output_type, product_id)
    return products.MODULES[catalog.AEF.id].int16_storage(raster) if request.output_type == "int16" else None


def run(request, log=None, progress=None, is_cancelled=None, client=None):
    """Load, mosaic and write; returns a LoadResult."""
    log = log or PrintLog()
    check_destination(request.output)
    check_output_type(request.output_type, request.product or "auto")  # refused before anything is read
    product_id, raster = plan(request, log, client)
    # the means of unit vectors are re-normalised
    tee = OverviewTee(raster, request.output, catalog.has_unit_vectors(product_id)) if request.overviews else None
    try:
        storage = output_storage(request, product_id, raster)
        write_geotiff(tee or raster, request.output, progress, is_cancelled, storage=storage, order=write_order(raster))
        if tee is not None:
            _finish_overviews(tee, request.output, is_cancelled)
        elif os.path.exists(request.output + ".ovr"):
            os.remove(request.output + ".ovr")  # a previous output's overviews: not of these values
    finally:
        if tee is not None:
            tee.discard()
        raster.close()
    return LoadResult(request.output, product_id, raster.grid, raster.provenance, getattr(raster, "patches", None))


def write_order(raster):
    """The order write_geotiff reads a raster's blocks in: a mosaic of tiles, two block rows at a time (each source
    tile is decompressed once); any other raster north to south."""
    return in_row_pairs if isinstance(raster, TileMosaic) else None


def _finish_overviews(tee, output, is_cancelled):
    """Put the overviews in place; if that fails, the output goes too (a load either completes or leaves nothing)."""
    try:
        tee.finish(is_cancelled=is_cancelled)
    except BaseException:
        for path in (output, output + ".ovr"):
            if os.path.exists(path):
                os.remove(path)
        raise
