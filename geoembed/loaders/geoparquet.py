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
    """Cheap check of the PAR1 magic at both ends of the file."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
            handle.seek(-4, 2)
            return head == b"PAR1" and handle.read(4) == b"PAR1"
    except OSError:
        return False


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
    xs, ys = [], []
    _walk_wkb(memoryview(wkb), 0, xs, ys)
    if not xs:
        return None
    return (min(xs), min(ys), max(xs), max(ys))


def _walk_wkb(buf, offset, xs, ys):
    order = "<" if buf[offset] == 1 else ">"
    (gtype,) = struct.unpack_from(order + "I", buf, offset + 1)
    offset += 5
    has_srid = bool(gtype & 0x20000000)
    code = gtype & 0x0FFFFFFF  # without the EWKB flag bits; ISO WKB adds 1000 (Z), 2000 (M), 3000 (ZM)
    has_z = bool(gtype & 0x80000000) or code // 1000 in (1, 3)
    has_m = bool(gtype & 0x40000000) or code // 1000 in (2, 3)
    if has_srid:
        offset += 4
    base = code % 1000
    ndim = 2 + has_z + has_m
    if base == 1:  # point
        x, y = struct.unpack_from(order + "dd", buf, offset)
        if x == x:  # empty points are NaN
            xs.append(x)
            ys.append(y)
        return offset + 8 * ndim
    if base == 2:  # linestring
        return _read_points(buf, offset, order, ndim, xs, ys)
    if base == 3:  # polygon
        (rings,) = struct.unpack_from(order + "I", buf, offset)
        offset += 4
        for _ in range(rings):
            offset = _read_points(buf, offset, order, ndim, xs, ys)
        return offset
    if base in (4, 5, 6, 7):  # multi* and collections
        (count,) = struct.unpack_from(order + "I", buf, offset)
        offset += 4
        for _ in range(count):
            offset = _walk_wkb(buf, offset, xs, ys)
        return offset
    raise GeoEmbedError(f"Unsupported WKB geometry type {gtype}.")


def _read_points(buf, offset, order, ndim, xs, ys):
    (count,) = struct.unpack_from(order + "I", buf, offset)
    offset += 4
    coords = np.frombuffer(buf, dtype=np.dtype(order + "f8"), count=count * ndim, offset=offset).reshape(count, ndim)
    xs.extend(coords[:, 0].tolist())
    ys.extend(coords[:, 1].tolist())
    return offset + 8 * ndim * count


def wkb_rings(wkb):
    """Polygon rings as (n, 2) arrays for (multi)polygons, or [(1, 2) array] for a point; other types give []."""
    rings, points = [], []
    _collect(memoryview(wkb), 0, rings, points)
    return rings or points


def _collect(buf, offset, rings, points):
    order = "<" if buf[offset] == 1 else ">"
    (gtype,) = struct.unpack_from(order + "I", buf, offset + 1)
    offset += 5
    code = gtype & 0x0FFFFFFF
    ndim = 2 + (bool(gtype & 0x80000000) or code // 1000 in (1, 3)) + (bool(gtype & 0x40000000) or code // 1000 in (2, 3))
    if gtype & 0x20000000:
        offset += 4
    base = code % 1000
    if base == 1:
        x, y = struct.unpack_from(order + "dd", buf, offset)
        if x == x:
            points.append(np.array([[x, y]]))
        return offset + 8 * ndim
    if base == 3:
        (count,) = struct.unpack_from(order + "I", buf, offset)
        offset += 4
        for _ in range(count):
            (n,) = struct.unpack_from(order + "I", buf, offset)
            coords = np.frombuffer(buf, dtype=np.dtype(order + "f8"), count=n * ndim, offset=offset + 4).reshape(n, ndim)
            rings.append(coords[:, :2].astype(np.float64))
            offset += 4 + 8 * ndim * n
        return offset
    if base == 2:  # lines are not patches: skip their points
        (n,) = struct.unpack_from(order + "I", buf, offset)
        return offset + 4 + 8 * ndim * n
    if base in (4, 5, 6, 7):
        (count,) = struct.unpack_from(order + "I", buf, offset)
        offset += 4
        for _ in range(count):
            offset = _collect(buf, offset, rings, points)
        return offset
    raise GeoEmbedError(f"Unsupported WKB geometry type {gtype}.")
