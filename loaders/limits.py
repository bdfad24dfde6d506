"""Plausibility limits checked before anything is allocated, and the one-line refusals of files that break them.

A file's header says how big its content is (a raster's size, band count and block size, a .npy's shape and dtype, a
Parquet row group's row and value counts); readers allocate what it says. A header that lies (or a file made to hurt)
must be refused here, in a fraction of a second, before any allocation. The limits are far above every real product
(shared formats.md) and far below what would exhaust memory:

- MAX_BANDS 4096: the widest real embedding is 1024-d (Clay v1.5, Major TOM's SigLIP); 768 (Copernicus-Embed), 128
  (Tessera), 64 (AlphaEarth) are the usual.
- MAX_AXIS_PX 2^20 per axis: what a GeoTIFF/BigTIFF can state, but no product tile passes 10^5 (AEF COGs are 8192,
  a global 0.25 degree map is 1440); MAX_PIXELS 2^36 per file (a 262144 x 262144 mosaic): more is not one raster
  anyone reads block by block in QGIS.
- MAX_EMBEDDING_WIDTH 4096 values per row of a GeoParquet list column: one embedding (see MAX_BANDS).
- MAX_BLOCK_BYTES 1 GiB for one decompressed GDAL block (tile or strip, times the bands when pixel-interleaved):
  GDAL decompresses a whole block to read one pixel of it, so a deflate "bomb" tile is bounded only by this;
  real products tile at 256-1024 px (32 MiB for Tessera's 128 float bands at 256 px).
- MAX_COMPRESSION_RATIO 1100 for a zip member (an .npz array): deflate cannot expand data more than ~1032-fold, so a
  member whose directory entry claims more lies about its size (the rows are streamed, so memory stays bounded).
- read_limit_bytes(): what one read may allocate, the smaller of READ_CAP_BYTES (8 GiB) and half the memory
  available now (MemAvailable, else SC_AVPHYS_PAGES), never below READ_FLOOR_BYTES (256 MiB).
- Downloads: files fetched whole are cut at the size the server declared, or at GEOEMBED_MAX_DOWNLOAD_MIB (512 MiB)
  when it declared none; a server silent for GEOEMBED_HTTP_TIMEOUT_S (30 s) times out (requests' read timeout and
  GDAL's GDAL_HTTP_LOW_SPEED_TIME).
"""

import math
import os

import numpy as np

from .errors import GeoEmbedError

KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30

MAX_BANDS = 4096
MAX_AXIS_PX = 1 << 20
MAX_PIXELS = 1 << 36
MAX_EMBEDDING_WIDTH = 4096
MAX_BLOCK_BYTES = 1 * GIB
MAX_COMPRESSION_RATIO = 1100
READ_CAP_BYTES = 8 * GIB
READ_FLOOR_BYTES = 256 * MIB

MAX_DOWNLOAD_ENV = "GEOEMBED_MAX_DOWNLOAD_MIB"
MAX_DOWNLOAD_DEFAULT_MIB = 512
HTTP_TIMEOUT_ENV = "GEOEMBED_HTTP_TIMEOUT_S"
HTTP_TIMEOUT_DEFAULT_S = 30.0


class ImplausibleFile(GeoEmbedError):  # noqa: N818 - reads better at call sites
    """A file whose header claims more than any real product holds, or more than the file itself holds.

    Callers that try a file as several products (PRODUCT=auto) pass this on instead of trying the next one."""


# --- what the machine and the user allow -------------------------------------------------------------------------


def available_memory_bytes():
    """Memory available to a new allocation now: /proc/meminfo MemAvailable, else free pages; None when unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * KIB
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # not on Windows / macOS
        return None


def read_limit_bytes():
    """What one read may allocate: half the available memory, between READ_FLOOR_BYTES and READ_CAP_BYTES."""
    available = available_memory_bytes()
    if available is None:
        return READ_CAP_BYTES
    return int(min(READ_CAP_BYTES, max(READ_FLOOR_BYTES, available // 2)))


def max_download_bytes():
    """Cap on a file fetched whole when the server declares no size (env GEOEMBED_MAX_DOWNLOAD_MIB)."""
    return int(_positive_env(MAX_DOWNLOAD_ENV, MAX_DOWNLOAD_DEFAULT_MIB) * MIB)


def http_timeout_s():
    """Seconds without a byte after which a request is given up (env GEOEMBED_HTTP_TIMEOUT_S)."""
    return _positive_env(HTTP_TIMEOUT_ENV, HTTP_TIMEOUT_DEFAULT_S)


def _positive_env(name, default):
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = float(value)
    except ValueError:
        raise GeoEmbedError(f"{name}={value!r} is not a number; set it to a positive number or unset it.") from None
    if not math.isfinite(number) or number <= 0:
        raise GeoEmbedError(f"{name}={value!r} must be a positive number; set it to e.g. {default:g} or unset it.")
    return number


# --- checks ------------------------------------------------------------------------------------------------------


def size_text(count):
    """Bytes as a short human figure: 1.5 GiB, 12 MiB, 300 bytes."""
    for unit, size in (("TiB", 1 << 40), ("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count} bytes"


def refuse(name, claims, plausible):
    raise ImplausibleFile(f"{name} claims {claims}, but {plausible}; the file is damaged or not an embedding file.")


def check_raster_header(name, width, height, bands, item_bytes, block=None, pixel_interleaved=True):
    """A raster's size, band count and (decompressed) block size, as its header states them, before any read."""
    if width > MAX_AXIS_PX or height > MAX_AXIS_PX:
        refuse(name, f"{width} x {height} pixels", f"no embedding raster has more than {MAX_AXIS_PX} pixels per side")
    if width * height > MAX_PIXELS:
        refuse(name, f"{width} x {height} pixels", f"GeoEmbed reads rasters of at most {MAX_PIXELS:.3g} pixels")
    if bands > MAX_BANDS:
        refuse(name, f"{bands} bands", f"no embedding has more than {MAX_BANDS} dimensions")
    if block is not None:
        block_bytes = block[0] * block[1] * item_bytes * (bands if pixel_interleaved else 1)
        if block_bytes > min(MAX_BLOCK_BYTES, read_limit_bytes()):
            refuse(
                name,
                f"blocks of {block[0]} x {block[1]} pixels ({size_text(block_bytes)} each once decompressed)",
                f"a block must fit in {size_text(min(MAX_BLOCK_BYTES, read_limit_bytes()))} (real tiles are 256-1024 px)",
            )


def check_read(name, width, height, bands, item_bytes):
    """A read of width x height pixels of all bands: it must fit in what one read may allocate."""
    wanted = int(width) * int(height) * int(bands) * int(item_bytes)
    limit = read_limit_bytes()
    if wanted > limit:
        raise GeoEmbedError(
            f"Reading {width} x {height} pixels x {bands} bands of {name} needs {size_text(wanted)}, more than the "
            f"{size_text(limit)} of memory one read may take; choose a smaller EXTENT or a coarser RESOLUTION."
        )


def check_npy_header(name, shape, fortran_order, dtype, data_bytes, ndim=None, dtypes=None):
    """A .npy header (as numpy.lib.format reads it, without loading anything) against the limits and its file.

    data_bytes: how many bytes follow the header in the file (or the npz member); a header claiming more is truncated
    or lying. ndim / dtypes: what the product stores (e.g. 3 and int8 for a Tessera tile)."""
    dtype = np.dtype(dtype)
    if dtype.hasobject:  # pickled Python objects: data must never be code
        refuse(name, f"Python objects ({dtype})", "embeddings are numbers and GeoEmbed never unpickles a file")
    if dtypes is not None and dtype not in [np.dtype(d) for d in dtypes]:
        wanted = " or ".join(str(np.dtype(d)) for d in dtypes)
        refuse(name, f"values of type {dtype}", f"this product stores {wanted}")
    if fortran_order:
        refuse(name, "Fortran (column-major) order", "embedding arrays are written row-major (C order)")
    if ndim is not None and len(shape) != ndim:
        refuse(name, f"an array of shape {tuple(shape)}", f"this product stores {ndim}-dimensional arrays")
    if any(int(side) < 0 for side in shape):
        refuse(name, f"an array of shape {tuple(shape)}", "sides cannot be negative")
    if len(shape) >= 2:
        if any(int(side) > MAX_AXIS_PX for side in shape[:2]):
            refuse(name, f"an array of shape {tuple(shape)}", f"no tile has more than {MAX_AXIS_PX} pixels per side")
        if int(shape[0]) * int(shape[1]) > MAX_PIXELS:
            refuse(name, f"an array of shape {tuple(shape)}", f"GeoEmbed reads tiles of at most {MAX_PIXELS:.3g} pixels")
    if len(shape) >= 3 and math.prod(int(side) for side in shape[2:]) > MAX_BANDS:
        refuse(name, f"an array of shape {tuple(shape)}", f"no embedding has more than {MAX_BANDS} dimensions")
    claimed = math.prod(int(side) for side in shape) * dtype.itemsize
    if data_bytes is not None and claimed > data_bytes:
        raise ImplausibleFile(
            f"{name} claims {size_text(claimed)} of data (shape {tuple(shape)}, {dtype}) but holds {size_text(data_bytes)}; "
            "the file is truncated or lying: download it again."
        )
    return claimed


def read_npy_header(path):
    """(shape, fortran_order, dtype, bytes after the header) of a .npy file, reading its header only (never pickle)."""
    from numpy.lib import format as npy_format

    name = os.path.basename(path)
    try:
        with open(path, "rb") as handle:
            version = npy_format.read_magic(handle)
            reader = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
            shape, fortran, dtype = reader(handle)
            offset = handle.tell()
            size = os.fstat(handle.fileno()).st_size
    except (OSError, ValueError, SyntaxError, TypeError) as exc:  # a broken header raises any of these
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise GeoEmbedError(f"{name} is not a readable .npy file ({reason}); download it again.") from exc
    return tuple(shape), fortran, np.dtype(dtype), size - offset


def check_npy_file(path, ndim=None, dtypes=None):
    """Check a .npy file's header against the limits and its size; returns (shape, dtype)."""
    shape, fortran, dtype, data_bytes = read_npy_header(path)
    check_npy_header(os.path.basename(path), shape, fortran, dtype, data_bytes, ndim, dtypes)
    return shape, dtype


def check_compression(name, member, stored_bytes, expanded_bytes):
    """A zip member (an .npz array) whose stated expansion deflate cannot reach: its directory entry lies."""
    if expanded_bytes > MAX_COMPRESSION_RATIO * max(stored_bytes, 1) and expanded_bytes > MIB:
        refuse(
            name,
            f"that {member} expands from {size_text(stored_bytes)} to {size_text(expanded_bytes)}",
            f"deflate never expands data {MAX_COMPRESSION_RATIO}-fold",
        )


def check_list_width(name, column, width):
    """The declared length of one embedding (a fixed_size_list column's list_size, or values per row)."""
    if width > MAX_EMBEDDING_WIDTH:
        refuse(name, f"{width} values per row in column {column}", f"no embedding has more than {MAX_EMBEDDING_WIDTH} values")
