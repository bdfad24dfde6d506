"""Overviews of embedding rasters built the embedding way, and reading the level that fits a view.

GDAL's own overviews average each band on its own (or pick one pixel): on quantised or unit vectors that gives
vectors of the wrong length or codes no pixel has. Here each overview pixel is the mean of the valid full-resolution
vectors under it (nodata when none is valid), re-normalised to unit length for products whose vectors are unit
vectors (AEF). Every level is computed from full-resolution pixels, each once, block by block: a level-f pixel is the
mean of its f x f children (from exact sums of sums), not a mean of means.

Levels: factors 2, 4, 8, ... down to about SMALLEST pixels, which GDAL and QGIS use for display. Three ways in:
- OverviewTee (geoembed:load OVERVIEWS=true): the blocks on their way to the writer also make FILE.ovr, so the output
  is not read again;
- build(path): from the file, as internal overviews, or as FILE.ovr with external=True (for a file open in QGIS: the
  .ovr is written under a temporary name and renamed when complete, the GeoTIFF itself is never touched);
- View: the pixels of a map view from the level that fits the screen (the similarity panel's first view).
"""

import math
import os
import threading

import numpy as np
from osgeo import gdal, gdal_array

from ..errors import Cancelled, GeoEmbedError
from ..model import NODATA, EmbeddingRaster
from .gdal_io import gdal_call, gdal_errors, read_window, thread_options
from .grid import Grid, Window

SMALLEST = 256  # the coarsest level is the last whose longer side still has at least this many pixels
MAX_BLOCK = 1024  # full-resolution pixels per side read at once (64 bands x 1024^2 float32 = 256 MiB at most)
# Overviews are stored uncompressed: the means of embedding vectors hardly compress (ZSTD saves ~8 %, with the
# floating-point predictor ~18 %) and a panel's first view decodes them 4x (10x) faster so.
OVERVIEW_OPTIONS = {
    "GDAL_TIFF_OVR_BLOCKSIZE": "128",  # a 512-pixel block's level-4 pixels are one whole overview block
    "COMPRESS_OVERVIEW": "NONE",
    "INTERLEAVE_OVERVIEW": "BAND",
    "BIGTIFF_OVERVIEW": "IF_SAFER",
}


def factors(width, height, smallest=None):
    """The overview factors 2, 4, 8, ... whose level still has `smallest` (SMALLEST) pixels on its longer side."""
    smallest = SMALLEST if smallest is None else smallest
    found, factor = [], 2
    while factor <= MAX_BLOCK and math.ceil(max(width, height) / factor) >= smallest:
        found.append(factor)
        factor *= 2
    return found


def level_size(width, height, factor):
    """GDAL's size of an overview level: partial pixels at the east and south edges count."""
    return math.ceil(width / factor), math.ceil(height / factor)


def has_overviews(path):
    dataset, _ = gdal_call(gdal.Open, str(path))
    return dataset is not None and dataset.RasterCount > 0 and dataset.GetRasterBand(1).GetOverviewCount() > 0


def _block_sums(sums, counts, factor):
    """Sums and counts over f x f blocks, the edges padded with nothing."""
    bands, rows, cols = sums.shape
    out_rows, out_cols = math.ceil(rows / factor), math.ceil(cols / factor)
    pad = ((0, 0), (0, out_rows * factor - rows), (0, out_cols * factor - cols))
    if pad[1][1] or pad[2][1]:
        sums, counts = np.pad(sums, pad), np.pad(counts, pad[1:])
    sums = sums.reshape(bands, out_rows, factor, out_cols, factor).sum(axis=(2, 4))
    counts = counts.reshape(out_rows, factor, out_cols, factor).sum(axis=(1, 3))
    return sums, counts


def _first_sums(values, valid):
    """The level-2 sums (float32) and counts of a block. The four children are added unmasked (nodata is rare) and
    the cells with a nodata child are summed again from their valid children only."""
    rows, cols = valid.shape
    if rows % 2 or cols % 2:  # a block at the east or south edge
        values = np.pad(values, ((0, 0), (0, rows % 2), (0, cols % 2)))
        valid = np.pad(valid, ((0, rows % 2), (0, cols % 2)))
    values = values.astype(np.float32, copy=False)
    children = [(0, 0), (1, 0), (0, 1), (1, 1)]
    sums = values[:, 0::2, 0::2] + values[:, 1::2, 0::2]
    sums += values[:, 0::2, 1::2]
    sums += values[:, 1::2, 1::2]
    counts = sum(valid[r::2, c::2].astype(np.int32) for r, c in children)
    cell_rows, cell_cols = np.nonzero(counts < 4)
    if len(cell_rows):
        fixed = np.zeros((values.shape[0], len(cell_rows)), dtype=np.float32)
        for r, c in children:
            ok = valid[2 * cell_rows + r, 2 * cell_cols + c]
            fixed += np.where(ok, values[:, 2 * cell_rows + r, 2 * cell_cols + c], np.float32(0))
        sums[:, cell_rows, cell_cols] = fixed
    return sums, counts


def _means(sums, counts, normalise):
    """(means, valid) from sums and counts, in the sums' precision (a new array: sums are kept for the next level)."""
    valid = counts > 0
    means = sums * (1.0 / np.maximum(counts, 1)).astype(sums.dtype)[np.newaxis]
    if normalise:
        norms = np.sqrt(np.einsum("bij,bij->ij", means, means))
        means *= np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)[np.newaxis]
    return means, valid


class _Band:
    """How the stored numbers of a raster's bands become values and back (scale/offset, integer codes, nodata)."""

    def __init__(self, nodata, dtype, scale=1.0, offset=0.0):
        self.nodata, self.dtype, self.scale, self.offset = nodata, np.dtype(dtype), scale, offset

    @classmethod
    def of(cls, band):
        dtype = gdal_array.GDALTypeCodeToNumericTypeCode(band.DataType)
        return cls(band.GetNoDataValue(), dtype, band.GetScale() or 1.0, band.GetOffset() or 0.0)

    def scaled(self):
        return self.scale != 1.0 or self.offset != 0.0

    def values(self, stored):
        valid = np.ones(stored.shape[1:], dtype=bool)
        if self.nodata is not None and not math.isnan(self.nodata):
            valid &= ~(stored == self.nodata).any(axis=0)
        wanted = np.float64 if self.dtype == np.float64 else np.float32
        values = stored.astype(wanted, copy=False)
        if self.scaled():
            values = values * wanted(self.scale) + wanted(self.offset)
        valid &= np.isfinite(values.sum(axis=0))  # one pass: a NaN or infinite component makes the sum so
        return values, valid

    def stored(self, means, valid):
        codes = (means - self.offset) / self.scale if self.scaled() else means
        if self.dtype.kind in "iu":
            info = np.iinfo(self.dtype)
            codes = np.clip(np.rint(codes), info.min, info.max)
        codes = codes.astype(self.dtype, copy=False)
        fill = self.nodata if self.nodata is not None else (np.nan if self.dtype.kind == "f" else 0)
        codes[:, ~valid] = self.dtype.type(fill)
        return codes


def _last(messages):
    return messages[-1].rstrip(".") if messages else "GDAL gave no reason"


# --- writing ---------------------------------------------------------------------------------------------------


class _Pyramid:
    """The overview levels being written: add(window, values, valid) writes every level's pixels under a
    full-resolution window whose corner is on a multiple of the coarsest factor. Thread-safe."""

    def __init__(self, target, overview_sets, levels, band, normalise):
        self.target, self.overview_sets, self.levels = target, overview_sets, levels
        self.band, self.normalise = band, normalise
        self.lock = threading.Lock()

    def aligned(self, window, width, height):
        step = self.levels[-1]
        ends = (window.col + window.width == width or window.width % step == 0) and (
            window.row + window.height == height or window.height % step == 0
        )
        return window.col % step == 0 and window.row % step == 0 and ends

    def add(self, window, values, valid):
        sums, counts = _first_sums(values, valid)
        planes, previous = [], 2
        for factor in self.levels:
            if factor > previous:
                if factor > 4:  # float32 sums of up to 16 values; in float64 beyond
                    sums = sums.astype(np.float64, copy=False)
                sums, counts = _block_sums(sums, counts, factor // previous)  # sums of sums: exact, no mean of means
                previous = factor
            means, ok = _means(sums, counts, self.normalise)
            planes.append((factor, self.band.stored(means, ok)))
        with self.lock:
            for overviews, (factor, codes) in zip(self.overview_sets, planes):
                col, row = window.col // factor, window.row // factor
                for overview, plane in zip(overviews, codes):
                    status, messages = gdal_call(overview.WriteArray, np.ascontiguousarray(plane), col, row)
                    if status != 0:
                        raise GeoEmbedError(f"Writing overviews failed: {_last(messages)}; check the free disk space.")

    def close(self):
        """Flush and close; GDAL's complaints while doing so become a GeoEmbedError."""
        with gdal_errors() as messages:
            gdal_call(self.target.FlushCache)
            self.drop()
        if messages:
            raise GeoEmbedError(f"Writing overviews failed: {_last(messages)}; check the free disk space.")

    def drop(self):
        self.overview_sets = None
        self.target = None


def build(path, normalise, progress=None, is_cancelled=None, external=False, smallest=None):
    """Write the embedding overviews of the GeoTIFF at path, read back block by block; returns the factors written
    ([] for a small raster).

    normalise: re-normalise each mean to unit length (products of unit vectors). external: write FILE.ovr (for a file
    open elsewhere, e.g. in QGIS) instead of internal overviews. A failure or a cancel leaves the file as it was
    (internal overviews are removed again; an external .ovr is only renamed into place when complete)."""
    path = str(path)
    source, messages = gdal_call(gdal.Open, path)
    if source is None:
        raise GeoEmbedError(f"Cannot open {path} to build overviews: {_last(messages)}.")
    width, height = source.RasterXSize, source.RasterYSize
    levels = factors(width, height, smallest)
    if not levels:
        return []
    band = _Band.of(source.GetRasterBand(1))
    partial = f"{path}.{os.getpid()}.partial.ovr"
    pyramid = None
    try:
        if external:
            shape = (width, height, source.RasterCount, source.GetRasterBand(1).DataType)
            pyramid = _pyramid_file(partial, *shape, levels, band, normalise)
        else:
            pyramid = _internal(path, levels, band, normalise)
        windows = list(Grid("", 0, 0, 1, 1, width, height).blocks(max(512, levels[-1])))
        for done, window in enumerate(windows, start=1):
            if is_cancelled and is_cancelled():
                raise Cancelled()
            values, valid = band.values(read_window(source, path, window.col, window.row, window.width, window.height))
            pyramid.add(window, values, valid)
            if progress:
                progress(done / len(windows))
        pyramid.close()
        if external:
            os.replace(partial, path + ".ovr")
    except BaseException:
        if pyramid is not None:
            pyramid.drop()
        source = None
        if external:
            if os.path.exists(partial):
                os.remove(partial)
        else:
            remove_overviews(path)
        raise
    return levels


def _internal(path, levels, band, normalise):
    target, messages = gdal_call(gdal.OpenEx, path, gdal.OF_RASTER | gdal.OF_UPDATE)
    if target is None:
        raise GeoEmbedError(f"Cannot open {path} to add overviews: {_last(messages)}.")
    with thread_options(OVERVIEW_OPTIONS):
        _, messages = gdal_call(target.BuildOverviews, "NONE", levels)
    if target.GetRasterBand(1).GetOverviewCount() != len(levels):
        raise GeoEmbedError(f"Cannot add overviews to {path}: {_last(messages)}.")
    sets = [[target.GetRasterBand(b + 1).GetOverview(i) for b in range(target.RasterCount)] for i in range(len(levels))]
    return _Pyramid(target, sets, levels, band, normalise)


def _pyramid_file(partial, width, height, bands, data_type, levels, band, normalise):
    """An .ovr file: a TIFF whose main image is the first level and whose internal overviews are the others."""
    first_width, first_height = level_size(width, height, levels[0])
    creation = ["TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256", "COMPRESS=NONE", "INTERLEAVE=BAND", "BIGTIFF=IF_SAFER"]
    driver = gdal.GetDriverByName("GTiff")
    target, messages = gdal_call(driver.Create, partial, first_width, first_height, bands, data_type, creation)
    if target is None:
        raise GeoEmbedError(f"Cannot create {partial}: {_last(messages)}.")
    if len(levels) > 1:
        with thread_options(OVERVIEW_OPTIONS):
            gdal_call(target.BuildOverviews, "NONE", [f // levels[0] for f in levels[1:]])
    sets = [[target.GetRasterBand(b + 1) for b in range(bands)]]
    sets += [[target.GetRasterBand(b + 1).GetOverview(i) for b in range(bands)] for i in range(len(levels) - 1)]
    return _Pyramid(target, sets, levels, band, normalise)


def remove_overviews(path):
    """Take the internal overviews out of a GeoTIFF again (GDAL then reuses their space)."""
    dataset, _ = gdal_call(gdal.OpenEx, str(path), gdal.OF_RASTER | gdal.OF_UPDATE)
    if dataset is not None:
        gdal_call(dataset.BuildOverviews, "NONE", [])
        dataset = None


class OverviewTee(EmbeddingRaster):
    """Wraps the EmbeddingRaster being written to a Float32 GeoTIFF: every block read on its way to the writer also
    goes into the overviews, written to OUTPUT.ovr beside it, so they cost no second read of the output.

    finish() once the output is complete puts the .ovr in place (or, when the blocks did not line up with the
    overview levels or the output is not Float32, builds internal overviews from the output); discard() on failure."""

    def __init__(self, raster, output, normalise, smallest=None):
        self.raster = raster
        self.grid, self.band_names, self.provenance = raster.grid, raster.band_names, raster.provenance
        self.output, self.normalise, self.smallest = str(output), normalise, smallest
        self.levels = factors(self.grid.width, self.grid.height, smallest)
        self.partial = f"{self.output}.{os.getpid()}.partial.ovr"
        self.pyramid = None
        self.missed = False  # a block that did not line up: the overviews are built from the output instead
        if self.levels:
            shape = (self.grid.width, self.grid.height, len(self.band_names), gdal.GDT_Float32)
            self.pyramid = _pyramid_file(self.partial, *shape, self.levels, _Band(NODATA, np.float32), normalise)

    def __getattr__(self, name):  # block_size, patches, ...: the wrapped raster's
        if name == "raster":
            raise AttributeError(name)
        return getattr(self.raster, name)

    def read(self, window):
        block = self.raster.read(window)
        if self.pyramid is not None and not self.missed:
            if self.pyramid.aligned(window, self.grid.width, self.grid.height):
                self.pyramid.add(window, block.values, block.valid)
            else:
                self.missed = True
        return block

    def finish(self, progress=None, is_cancelled=None):
        """The output is complete: put its overviews in place; returns the factors ([] for a small raster)."""
        if self.pyramid is None:
            return []
        self.pyramid.close()
        self.pyramid = None
        dataset, _ = gdal_call(gdal.Open, self.output)
        float32 = dataset is not None and dataset.GetRasterBand(1).DataType == gdal.GDT_Float32
        dataset = None
        if self.missed or not float32:
            self.discard()
            return build(self.output, self.normalise, progress, is_cancelled, smallest=self.smallest)
        os.replace(self.partial, self.output + ".ovr")
        return self.levels

    def discard(self):
        if self.pyramid is not None:
            self.pyramid.drop()
            self.pyramid = None
        if os.path.exists(self.partial):
            os.remove(self.partial)

    def close(self):
        self.raster.close()


# --- reading for a view ----------------------------------------------------------------------------------------


def view_level(path, window, out_width, out_height):
    """(factor, level index or None) of the coarsest overview that still has at least one pixel per output pixel
    over a full-resolution window; (1, None) when the window is already small enough or no overview fits."""
    dataset = gdal.Open(str(path))
    band = dataset.GetRasterBand(1)
    best = (1, None)
    for index in range(band.GetOverviewCount()):
        overview = band.GetOverview(index)
        factor = round(dataset.RasterXSize / overview.XSize)
        if window.width / factor >= out_width and window.height / factor >= out_height and factor > best[0]:
            best = (factor, index)
    return best


class View:
    """The pixels of a full-resolution window at the overview level that fits a screen (see view_level), read a few
    bands at a time: screen-sized reads whatever the raster's size. Each read opens its own GDAL handle, so bands
    can be read in several threads at once."""

    def __init__(self, path, grid, window, out_width, out_height):
        self.path = str(path)
        self.factor, self.level = view_level(path, window, out_width, out_height)
        full = gdal.Open(self.path)
        self.band = _Band.of(full.GetRasterBand(1))  # the file's nodata and scale (an .ovr's bands have none)
        full = None
        dataset = self._open()
        self.band_count = dataset.RasterCount
        col0, row0 = window.col // self.factor, window.row // self.factor
        col1 = min(math.ceil((window.col + window.width) / self.factor), dataset.RasterXSize)
        row1 = min(math.ceil((window.row + window.height) / self.factor), dataset.RasterYSize)
        self.window = Window(col0, row0, col1 - col0, row1 - row0)
        self.grid = Grid(
            grid.crs,
            grid.x0 + col0 * self.factor * grid.res_x,
            grid.y0 - row0 * self.factor * grid.res_y,
            grid.res_x * grid.width / dataset.RasterXSize,
            grid.res_y * grid.height / dataset.RasterYSize,
            self.window.width,
            self.window.height,
        )

    def _open(self):
        if self.level is None:
            dataset, messages = gdal_call(gdal.Open, self.path)
        else:
            dataset, messages = gdal_call(gdal.OpenEx, self.path, gdal.OF_RASTER, open_options=[f"OVERVIEW_LEVEL={self.level}"])
        if dataset is None:
            raise GeoEmbedError(f"Cannot read {self.path}: {messages[-1] if messages else 'unknown error'}.")
        return dataset

    def read(self, first=0, last=None):
        """(values (bands, rows, cols) float32 with scale and offset applied, valid) of bands first..last-1."""
        last = self.band_count if last is None else last
        dataset = self._open()
        w = self.window
        bands = list(range(first + 1, last + 1))
        stored, messages = gdal_call(dataset.ReadAsArray, w.col, w.row, w.width, w.height, band_list=bands)
        if stored is None:
            raise GeoEmbedError(f"Cannot read {self.path}: {messages[-1] if messages else 'unknown error'}.")
        return self.band.values(stored.reshape(last - first, w.height, w.width))


def read_view(path, grid, window, out_width, out_height):
    """(values, valid, grid of the read, factor) of all bands of a View (for tests and small windows)."""
    view = View(path, grid, window, out_width, out_height)
    values, valid = view.read()
    return values, valid, view.grid, view.factor


def clip_window(grid, bounds):
    """The full-resolution window of grid under bounds (xmin, ymin, xmax, ymax), or None when they do not meet."""
    xmin, ymin, xmax, ymax = bounds
    col0 = max(0, math.floor((xmin - grid.x0) / grid.res_x))
    col1 = min(grid.width, math.ceil((xmax - grid.x0) / grid.res_x))
    row0 = max(0, math.floor((grid.y0 - ymax) / grid.res_y))
    row1 = min(grid.height, math.ceil((grid.y0 - ymin) / grid.res_y))
    if col0 >= col1 or row0 >= row1:
        return None
    return Window(col0, row0, col1 - col0, row1 - row0)
