"""Block-by-block GeoTIFF writing of an EmbeddingRaster: north-up, tiled, compressed, Float32.

The file is written under a temporary name beside the destination and renamed only when complete,
so an error or a cancel never leaves a half-written output. write_geotiff produces the next block (reading and
de-quantising it) in a background thread while GDAL takes and compresses the current one.
"""

import contextlib
import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from osgeo import gdal, gdal_array

from ... import __about__
from ..errors import Cancelled, GeoEmbedError
from ..model import NODATA
from .gdal_io import crs_wkt, gdal_call, gdal_errors

BLOCK = 512  # pixels per side of the blocks read and written at once (64 bands x 512^2 float32 = 64 MiB)
GEOTIFF_EXTENSIONS = (".tif", ".tiff")


def compression():
    options = gdal.GetDriverByName("GTiff").GetMetadataItem("DMD_CREATIONOPTIONLIST") or ""
    return "ZSTD" if "ZSTD" in options else "DEFLATE"


def creation_options(data_type=gdal.GDT_Float32, predictor=None):
    """GTiff creation options; predictor None: GDAL's floating-point predictor for floats, differencing for integers."""
    if predictor is None:
        predictor = 3 if data_type in (gdal.GDT_Float32, gdal.GDT_Float64) else 2
    return [
        "TILED=YES",
        "BLOCKXSIZE=256",
        "BLOCKYSIZE=256",
        f"COMPRESS={compression()}",
        "ZSTD_LEVEL=1",  # fast; higher levels cost much time for little size on Float32 embeddings
        f"PREDICTOR={predictor}",
        "NUM_THREADS=ALL_CPUS",
        "INTERLEAVE=BAND",  # QGIS draws 3 bands; band interleave lets it skip the other 61
        "BIGTIFF=IF_SAFER",
    ]


@dataclass
class OutputSpec:
    """One GeoTIFF to write: where, band names, GDAL data type, nodata value and dataset metadata."""

    path: str
    band_names: tuple
    data_type: int = gdal.GDT_Float32
    nodata: float = NODATA
    metadata: dict = field(default_factory=dict)
    scale: float = None  # a band scale (GDAL SetScale; offset 0): stored integers * scale are the values
    predictor: int = None  # None: creation_options' default


# Embedding rasters are written without a predictor: de-quantised values take few distinct float values, which ZSTD
# alone packs 2.4x smaller than after the floating-point predictor, in ~40 % less CPU (bench_load.py's "pred3" row);
# continuous embeddings come out ~8 % larger, for the same saving in time.
EMBEDDING_PREDICTOR = 1


@dataclass
class Storage:
    """How write_geotiff stores an EmbeddingRaster: data type, nodata, band scale and the read giving stored numbers."""

    data_type: int = gdal.GDT_Float32
    nodata: float = NODATA
    scale: float = None
    read: object = None  # read(window) -> EmbeddingBlock of the stored numbers; None: the raster's own read(window)


def check_destination(path):
    """Refuse destinations we cannot write before any work is done."""
    if not str(path).lower().endswith(GEOTIFF_EXTENSIONS):
        raise GeoEmbedError(f"OUTPUT must be a GeoTIFF (.tif), got {os.path.basename(str(path))}.")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    if not os.access(folder, os.W_OK):
        raise GeoEmbedError(f"Cannot write to {folder}; choose another OUTPUT folder.")


COMPRESSION_GUESS = 0.5  # embeddings rarely compress better than this: the space a write is assumed to need


def check_space(grid, specs):
    """Refuse a write that cannot fit on its disk before any work is done (a mistaken EXTENT can mean terabytes)."""
    by_folder = {}
    for spec in specs:
        folder = os.path.dirname(os.path.abspath(spec.path))
        item = gdal.GetDataTypeSize(spec.data_type) // 8
        by_folder[folder] = by_folder.get(folder, 0) + grid.width * grid.height * len(spec.band_names) * item
    for folder, raw in by_folder.items():
        free = shutil.disk_usage(folder).free
        if raw * COMPRESSION_GUESS > free:
            raise GeoEmbedError(
                f"The output would need about {_size(raw * COMPRESSION_GUESS)} ({grid.width} x {grid.height} pixels), "
                f"but {folder} has {_size(free)} free; choose a smaller EXTENT, a coarser RESOLUTION or another folder."
            )


def _size(count):
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if count < 1000 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1000.0


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
    if getattr(provenance, "product_version", ""):
        meta["GEOEMBED_PRODUCT_VERSION"] = provenance.product_version  # GEOEMBED_VERSION is GeoEmbed's own version
    if provenance.notes:
        meta["GEOEMBED_NOTES"] = " ".join(provenance.notes)
    return meta


def embedding_spec(raster, path, storage):
    """The OutputSpec of an embedding raster written to path as storage says (its type, nodata and scale)."""
    return OutputSpec(
        path,
        raster.band_names,
        storage.data_type,
        storage.nodata,
        provenance_metadata(raster.provenance),
        storage.scale,
        EMBEDDING_PREDICTOR,
    )


def write_geotiff(raster, path, progress=None, is_cancelled=None, block=BLOCK, storage=None, order=None):
    """Write every block of an EmbeddingRaster to path (as Float32 unless storage says otherwise); returns path.

    order(windows) -> the same windows in the order to read and write them (e.g. in_row_pairs); default north to south."""
    storage = storage or Storage()
    spec = embedding_spec(raster, path, storage)
    read = storage.read or raster.read
    block = getattr(raster, "block_size", block)  # e.g. aggregation reads a bounded source window per block
    produce = lambda window: [read(window)]  # noqa: E731
    write_rasters(raster.grid, [spec], produce, progress, is_cancelled, block, ahead=True, order=order)
    return path


def in_row_pairs(windows):
    """Row-major windows reordered two block rows at a time, column by column: (r, c), (r+1, c), (r, c+1), ...

    A source tiled twice the block size (AlphaEarth's 1024-pixel tiles under 512-pixel blocks) then has each of its
    tiles read by consecutive windows, so GDAL decompresses it once: in row-major order its tiles fall out of GDAL's
    cache, which the blocks being written also fill, between the upper and the lower halves (1.5x the bytes read).
    Every raster GeoEmbed opens reads any window at any time (each read stands alone), so any may be read this way;
    load uses it for mosaics, similarity and classify for every input."""
    rows = {}
    for window in windows:
        rows.setdefault(window.row, []).append(window)
    ordered, starts = [], sorted(rows)
    for first, second in zip(starts[::2], starts[1::2] + [None]):
        pair = [rows[first], rows.get(second, [])]
        for column in range(max(len(pair[0]), len(pair[1]))):
            ordered.extend(row[column] for row in pair if column < len(row))
    return ordered


def write_rasters(grid, specs, produce, progress=None, is_cancelled=None, block=BLOCK, ahead=False, order=None):
    """Write several rasters on one grid in one pass: produce(window) -> one EmbeddingBlock per spec.

    Each file is written under a temporary name and renamed only when all are complete; an error
    or a cancel removes them all. progress(fraction) and is_cancelled() are optional. ahead: produce the next
    block in a background thread while this one is written (produce must then not mind running off the main
    thread; it is still called for one window at a time, in order). order: see write_geotiff.
    """
    for spec in specs:
        check_destination(spec.path)
    check_space(grid, specs)
    temps = [
        os.path.join(os.path.dirname(os.path.abspath(s.path)), f".{os.path.basename(s.path)}.{os.getpid()}.partial.tif")
        for s in specs
    ]
    datasets = []
    try:
        for spec, tmp in zip(specs, temps):
            datasets.append(_create(spec, tmp, grid))
        windows = list(grid.blocks(block))
        windows = order(windows) if order else windows
        with _produced(produce, windows, ahead, is_cancelled) as produced:
            for done, (window, blocks) in enumerate(produced, start=1):
                if is_cancelled and is_cancelled():
                    raise Cancelled()
                _write_block(specs, datasets, window, blocks)
                if progress:
                    progress(done / len(windows))
        for index, spec in enumerate(specs):
            with gdal_errors() as messages:
                _, flush_messages = gdal_call(datasets[index].FlushCache)
                datasets[index] = None  # closing writes what is left
            if flush_messages or messages:
                raise GeoEmbedError(f"Writing {spec.path} failed: {_last(flush_messages + messages)}.")
        for spec, tmp in zip(specs, temps):
            if os.path.exists(spec.path + ".aux.xml"):
                os.remove(spec.path + ".aux.xml")  # stale statistics of a previous file
            os.replace(tmp, spec.path)
    except BaseException:
        datasets.clear()
        for tmp in temps:
            if os.path.exists(tmp):
                os.remove(tmp)
        raise


@contextlib.contextmanager
def _produced(produce, windows, ahead, is_cancelled=None):
    """(window, produce(window)) of every window, in order, produced when asked for. With ahead, the next window's
    produce runs in a background thread while the caller writes the current one (is_cancelled() is asked before it
    starts): GDAL's reads and writes and numpy release the GIL, so reading and de-quantising overlap with GDAL copying
    blocks into its cache and compressing them in its own threads."""
    if not ahead or len(windows) < 2:
        yield ((window, produce(window)) for window in windows)
        return

    def check():
        if is_cancelled and is_cancelled():
            raise Cancelled()

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="geoembed-produce")
    pending = []

    def generate():
        check()
        pending.append(pool.submit(produce, windows[0]))
        for index, window in enumerate(windows):
            blocks = pending.pop().result()
            if index + 1 < len(windows):
                check()
                pending.append(pool.submit(produce, windows[index + 1]))
            yield window, blocks

    try:
        yield generate()
    finally:
        for future in pending:  # a cancel or an error: the block in flight is waited for, never left reading
            future.cancel()
            with contextlib.suppress(Exception):
                future.result()
        pool.shutdown(wait=True)


def _write_block(specs, datasets, window, blocks):
    """One window of every output: values in the output's type, nodata where not valid, band by band."""
    for spec, dataset, data in zip(specs, datasets, blocks):
        values = np.asarray(data.values)
        if values.ndim == 2:
            values = values[np.newaxis]
        values = values.astype(gdal_array.GDALTypeCodeToNumericTypeCode(spec.data_type), copy=False)
        if not data.valid.all():  # a full pass over the block otherwise spent on nothing
            np.copyto(values, values.dtype.type(spec.nodata), where=~data.valid[np.newaxis])
        for index in range(values.shape[0]):
            band = dataset.GetRasterBand(index + 1)
            status, messages = gdal_call(band.WriteArray, _rows(values[index]), window.col, window.row)
            if status != 0:
                raise GeoEmbedError(f"Writing {spec.path} failed: {_last(messages)}; check the free disk space.")


def _rows(array):
    """array as GDAL can take it without a copy: GDAL's numpy bindings honour row strides, also negative ones (a
    south-up tile's rows handed over in north-up order), so only pixels that are not adjacent need a copy."""
    return array if array.strides[-1] == array.itemsize else np.ascontiguousarray(array)


def _last(messages):
    return messages[-1].rstrip(".") if messages else "GDAL gave no reason"


def _create(spec, tmp, grid):
    driver = gdal.GetDriverByName("GTiff")
    size = (grid.width, grid.height, len(spec.band_names), spec.data_type)
    dataset, messages = gdal_call(driver.Create, tmp, *size, creation_options(spec.data_type, spec.predictor))
    if dataset is None:
        raise GeoEmbedError(f"Cannot create {spec.path}: {_last(messages)}.")
    dataset.SetGeoTransform(grid.geotransform)
    dataset.SetProjection(crs_wkt(grid.crs))
    dataset.SetMetadata({**spec.metadata, "GEOEMBED_VERSION": __about__.__version__})
    dataset.SetMetadataItem("AREA_OR_POINT", "Area")
    for index, name in enumerate(spec.band_names):
        band = dataset.GetRasterBand(index + 1)
        band.SetDescription(name)
        band.SetNoDataValue(spec.nodata)
        if spec.scale is not None:
            band.SetScale(spec.scale)
            band.SetOffset(0.0)
    return dataset
