"""GeoParquet reading with pyarrow: geometry metadata, WKB envelopes, filtered column reads."""

import json
import struct

import numpy as np

from .errors import GeoEmbedError

PYARROW_HINT = 'GeoParquet needs pyarrow; install it into QGIS\'s Python, e.g. python3 -m pip install --user "pyarrow<26".'


def pyarrow_parquet():
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise GeoEmbedError(PYARROW_HINT) from exc
    return pq


def open_parquet(path):
    """A pyarrow ParquetFile; raise GeoEmbedError if the file is not parquet."""
    pq = pyarrow_parquet()
    import pyarrow

    try:
        return pq.ParquetFile(path)
    except (pyarrow.ArrowInvalid, OSError) as exc:
        raise GeoEmbedError(f"{path} is not a readable Parquet file ({str(exc).splitlines()[0]}).") from exc


def is_parquet(path):
    """Cheap check of a Parquet file's frame: PAR1 at both ends and a footer length that fits the file."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
            size = handle.seek(0, 2)
            if size < 12:
                return False
            handle.seek(-8, 2)
            tail = handle.read(8)
    except OSError:
        return False
    footer = int.from_bytes(tail[:4], "little")
    return head == b"PAR1" and tail[4:] == b"PAR1" and 0 < footer <= size - 12


def geo_metadata(schema):
    """The GeoParquet 'geo' metadata as a dict, or None when the file has none."""
    raw = (schema.metadata or {}).get(b"geo")
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def geometry_column(schema):
    """Name of the primary geometry column: from 'geo' metadata, else a column named geometry/geom."""
    meta = geo_metadata(schema)
    if meta and meta.get("primary_column") in schema.names:
        return meta["primary_column"]
    for name in ("geometry", "geom", "wkb_geometry"):
        if name in schema.names:
            return name
    return None


def wkb_bounds(wkb):
    """(xmin, ymin, xmax, ymax) of a WKB (or ISO/EWKB) geometry, without a geometry library."""
    parts = [coords for _, coords in wkb_parts(wkb)]
    if not parts:
        return None
    coords = np.concatenate(parts)
    return (coords[:, 0].min(), coords[:, 1].min(), coords[:, 0].max(), coords[:, 1].max())


def wkb_rings(wkb):
    """Polygon rings as (n, 2) arrays for (multi)polygons, or [(1, 2) array] for a point; lines give []."""
    parts = wkb_parts(wkb)
    rings = [coords for kind, coords in parts if kind == "ring"]
    return rings or [coords for kind, coords in parts if kind == "point"]


def wkb_parts(wkb):
    """[(kind, (n, 2) float64 x/y array)] with kind "point", "line" or "ring", for any (multi) geometry."""
    parts = []
    _parse(memoryview(wkb), 0, parts)
    return parts


def _parse(buf, offset, parts):
    order = "<" if buf[offset] == 1 else ">"
    (gtype,) = struct.unpack_from(order + "I", buf, offset + 1)
    offset += 5
    code = gtype & 0x0FFFFFFF  # without the EWKB flag bits; ISO WKB adds 1000 (Z), 2000 (M), 3000 (ZM)
    has_z = bool(gtype & 0x80000000) or code // 1000 in (1, 3)
    has_m = bool(gtype & 0x40000000) or code // 1000 in (2, 3)
    if gtype & 0x20000000:  # EWKB SRID
        offset += 4
    base, ndim = code % 1000, 2 + has_z + has_m
    if base == 1:
        x, y = struct.unpack_from(order + "dd", buf, offset)
        if x == x:  # empty points are NaN
            parts.append(("point", np.array([[x, y]])))
        return offset + 8 * ndim
    if base == 2:
        return _read_coords(buf, offset, order, ndim, "line", parts)
    if base == 3:
        (rings,) = struct.unpack_from(order + "I", buf, offset)
        offset += 4
        for _ in range(rings):
            offset = _read_coords(buf, offset, order, ndim, "ring", parts)
        return offset
    if base in (4, 5, 6, 7):  # multi* and collections
        (count,) = struct.unpack_from(order + "I", buf, offset)
        offset += 4
        for _ in range(count):
            offset = _parse(buf, offset, parts)
        return offset
    raise GeoEmbedError(f"Unsupported WKB geometry type {gtype}.")


def _read_coords(buf, offset, order, ndim, kind, parts):
    (count,) = struct.unpack_from(order + "I", buf, offset)
    coords = np.frombuffer(buf, dtype=np.dtype(order + "f8"), count=count * ndim, offset=offset + 4).reshape(count, ndim)
    if count:
        parts.append((kind, coords[:, :2].astype(np.float64)))
    return offset + 4 + 8 * ndim * count
