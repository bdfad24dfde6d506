"""GeoParquet reading with pyarrow: geometry metadata, WKB and GeoArrow geometries, bbox coverings, row-group boxes.

Geometries of one row group are decoded into a batch (WkbBatch or NativeBatch) that gives every row's bounds
as one array and rebuilds the rows a reader keeps as WKB, so the rest of the code sees one encoding.
"""

import json
import struct

import numpy as np

from ..errors import GeoEmbedError

PYARROW_HINT = 'GeoParquet needs pyarrow; install it into QGIS\'s Python, e.g. python3 -m pip install --user "pyarrow<26".'

# GeoParquet 1.1 native (GeoArrow) encodings a patch can have, with their list nesting above the coordinates.
NATIVE_DEPTH = {"point": 0, "multipoint": 1, "polygon": 2, "multipolygon": 3}
BBOX_FIELDS = ("xmin", "ymin", "xmax", "ymax")


class WkbError(GeoEmbedError):
    """A geometry value that cannot be decoded; whoever reads the file names it."""


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
        meta = json.loads(raw)
    except ValueError:
        return None
    return meta if isinstance(meta, dict) and isinstance(meta.get("columns", {}), dict) else None


def column_metadata(schema, column):
    """The 'geo' metadata of one geometry column as a dict ({} when there is none)."""
    meta = geo_metadata(schema)
    entry = (meta or {}).get("columns", {}).get(column)
    return entry if isinstance(entry, dict) else {}


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
    raise WkbError(f"Unsupported WKB geometry type {gtype}.")


def _read_coords(buf, offset, order, ndim, kind, parts):
    (count,) = struct.unpack_from(order + "I", buf, offset)
    coords = np.frombuffer(buf, dtype=np.dtype(order + "f8"), count=count * ndim, offset=offset + 4).reshape(count, ndim)
    if count:
        parts.append((kind, coords[:, :2].astype(np.float64)))
    return offset + 4 + 8 * ndim * count


# --- GeoParquet 1.1: encodings, bbox covering, row-group statistics ------------------------------------------------


def geometry_encoding(schema, column):
    """'WKB' or a native encoding name ('point', 'polygon', ...) for a geometry column.

    From the 'geo' metadata; without it, from the GeoArrow extension name kept in the field metadata, else from
    the Arrow type (binary = WKB, coordinates nested 0 / 1 / 2 / 3 lists deep = point / multipoint / polygon /
    multipolygon).
    """
    import pyarrow as pa

    declared = column_metadata(schema, column).get("encoding")
    if isinstance(declared, str) and declared:
        return "WKB" if declared.upper() == "WKB" else declared.lower()
    field = schema.field(column)
    extension = (field.metadata or {}).get(b"ARROW:extension:name", b"").decode("utf-8", "replace")
    if extension.startswith("geoarrow."):
        return "WKB" if extension in ("geoarrow.wkb", "ogc.wkb") else extension[len("geoarrow.") :]
    kind, depth = field.type, 0
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return "WKB"
    while pa.types.is_list(kind) or pa.types.is_large_list(kind):
        kind, depth = kind.value_type, depth + 1
    if _is_coordinate_type(kind):
        return {0: "point", 1: "multipoint", 2: "polygon", 3: "multipolygon"}.get(depth, "unknown")
    return "unknown"


def _is_coordinate_type(kind):
    import pyarrow as pa

    if pa.types.is_struct(kind):
        return {"x", "y"} <= {kind.field(i).name for i in range(kind.num_fields)}
    return pa.types.is_fixed_size_list(kind) and kind.list_size in (2, 3, 4)


def covering_column(schema, column):
    """Name of the GeoParquet 1.1 bbox covering column of a geometry column, or None when it has none (or a bad one)."""
    bbox = column_metadata(schema, column).get("covering", {})
    bbox = bbox.get("bbox") if isinstance(bbox, dict) else None
    if not isinstance(bbox, dict):
        return None
    paths = [bbox.get(name) for name in BBOX_FIELDS]
    if not all(isinstance(p, list) and len(p) == 2 for p in paths):
        return None
    name = paths[0][0]
    if any(p[0] != name or p[1] != field for p, field in zip(paths, BBOX_FIELDS)) or name not in schema.names:
        return None
    import pyarrow as pa

    kind = schema.field(name).type
    if not pa.types.is_struct(kind) or not set(BBOX_FIELDS) <= {kind.field(i).name for i in range(kind.num_fields)}:
        return None
    return name


def covering_bounds(struct_array):
    """(n, 4) float64 xmin/ymin/xmax/ymax of a covering struct array; NaN where the row has no geometry."""
    children = dict(zip([f.name for f in struct_array.type], struct_array.flatten()))
    return np.column_stack([_floats(children[name]) for name in BBOX_FIELDS])


def row_group_box(parquet, group, xmin, ymin, xmax, ymax):
    """(xmin, ymin, xmax, ymax) of a row group from the Parquet statistics of four leaf columns (dotted paths), or None.

    For a covering the paths are its xmin/ymin/xmax/ymax fields; for a native encoding x, y, x, y.
    """
    meta = parquet.metadata.row_group(group)
    stats = {}
    for index in range(meta.num_columns):
        chunk = meta.column(index)
        if chunk.is_stats_set and chunk.statistics.has_min_max:
            stats[chunk.path_in_schema] = chunk.statistics
    try:
        box = (stats[xmin].min, stats[ymin].min, stats[xmax].max, stats[ymax].max)
    except KeyError:
        return None
    return tuple(float(v) for v in box) if all(isinstance(v, (int, float)) for v in box) else None


def native_coordinate_paths(parquet, column):
    """Dotted paths of the x and y leaves of a separated native geometry column, or None (interleaved, WKB)."""
    paths = [parquet.schema.column(i).path for i in range(len(parquet.schema))]
    x = [p for p in paths if p.split(".")[0] == column and p.split(".")[-1] == "x"]
    y = [p for p in paths if p.split(".")[0] == column and p.split(".")[-1] == "y"]
    return (x[0], y[0]) if len(x) == 1 and len(y) == 1 else None


def _floats(array):
    return np.asarray(array.to_numpy(zero_copy_only=False), dtype=np.float64)


# --- geometry batches: one row group's geometries, whatever their encoding -----------------------------------------


class WkbBatch:
    """WKB values (bytes or None) of consecutive rows."""

    def __init__(self, values):
        self.values = values

    def __len__(self):
        return len(self.values)

    def bounds(self):
        """(n, 4) float64 bounds of every row; NaN for missing or empty geometries."""
        out = np.full((len(self.values), 4), np.nan)
        for row, value in enumerate(self.values):
            box = wkb_bounds(value) if value else None
            if box is not None:
                out[row] = box
        return out

    def wkb(self, rows, move=None):
        """WKB of the given rows, re-expressed through move (an always_xy transformer to lon/lat) when given."""
        picked = [bytes(self.values[row]) for row in rows]
        return picked if move is None else [_moved_wkb(value, move) for value in picked]


def _moved_wkb(wkb, move):
    """A WKB patch re-expressed in lon/lat: a point stays a point, anything else becomes one polygon of all its rings."""
    parts = wkb_parts(wkb)
    points = [coords for kind, coords in parts if kind == "point"]
    if points and len(points) == len(parts):
        lon, lat = move.transform(points[0][:, 0], points[0][:, 1])
        return struct.pack("<BIdd", 1, 1, float(lon[0]), float(lat[0]))
    rings = [coords for kind, coords in parts if kind == "ring"]
    out = [struct.pack("<BII", 1, 3, len(rings))]
    for ring in rings:
        lon, lat = move.transform(ring[:, 0], ring[:, 1])
        out.append(struct.pack("<I", len(ring)) + np.column_stack([lon, lat]).astype("<f8").tobytes())
    return b"".join(out)


class NativeBatch:
    """GeoArrow geometries of consecutive rows: x, y of every coordinate plus one offsets array per list level.

    offsets[0] splits rows into the next level's items (parts, rings or points), the last one splits into
    coordinates; a point batch has no offsets (one coordinate per row, NaN when missing).
    """

    def __init__(self, kind, x, y, offsets):
        self.kind, self.x, self.y, self.offsets = kind, x, y, offsets

    @classmethod
    def from_arrow(cls, array, kind):
        """Decode an Arrow array of a native encoding (separated {x, y[, z, m]} or interleaved [x, y, ...] coordinates)."""
        if kind not in NATIVE_DEPTH:
            raise WkbError(f"geometry encoding {kind!r} cannot hold patch footprints (points or polygons are needed)")
        offsets, level, valid = [], array, np.asarray(array.is_valid())
        for _ in range(NATIVE_DEPTH[kind]):
            lengths = level.value_lengths().fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
            offsets.append(np.concatenate([[0], np.cumsum(lengths)]))
            level = level.flatten()  # takes care of slicing and of nulls backed by non-empty lists
        x, y = _coordinates(level)
        if not offsets:  # a missing point: its coordinate slot holds no value
            x, y = np.where(valid, x, np.nan), np.where(valid, y, np.nan)
        return cls(kind, x, y, offsets)

    @classmethod
    def points(cls, x, y):
        return cls("point", np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64), [])

    def __len__(self):
        return len(self.offsets[0]) - 1 if self.offsets else len(self.x)

    def _coordinate_ranges(self):
        """Per row, the [start, end) range of its coordinates."""
        if not self.offsets:
            return np.arange(len(self.x)), np.arange(1, len(self.x) + 1)
        start, end = self.offsets[0][:-1], self.offsets[0][1:]
        for level in self.offsets[1:]:
            start, end = level[start], level[end]
        return start, end

    def bounds(self):
        """(n, 4) float64 bounds of every row, vectorised; NaN for missing or empty geometries."""
        start, end = self._coordinate_ranges()
        out = np.full((len(start), 4), np.nan)
        filled = end > start
        if filled.any():
            # Rows own consecutive coordinate ranges (an empty row's range is empty), so reducing from each filled
            # row's start up to the next filled row's start covers exactly that row's coordinates.
            starts = start[filled]
            out[filled, 0], out[filled, 2] = np.fmin.reduceat(self.x, starts), np.fmax.reduceat(self.x, starts)
            out[filled, 1], out[filled, 3] = np.fmin.reduceat(self.y, starts), np.fmax.reduceat(self.y, starts)
        return out

    def wkb(self, rows, move=None):
        """Little-endian WKB of the given rows, through move (an always_xy transformer to lon/lat) when given."""
        x, y = (self.x, self.y) if move is None else move.transform(self.x, self.y)
        offsets = [level.tolist() for level in self.offsets]
        if self.kind in ("point", "multipoint"):  # every coordinate as a whole WKB Point record, made in one go
            records = np.zeros(len(self.x), dtype=[("order", "u1"), ("type", "<u4"), ("x", "<f8"), ("y", "<f8")])
            records["order"], records["type"], records["x"], records["y"] = 1, 1, x, y
            data, size = records.tobytes(), records.dtype.itemsize
            if self.kind == "point":
                return [data[size * row : size * (row + 1)] for row in rows]
            return [_multipoint(int(row), data, size, offsets) for row in rows]
        coords = np.empty((len(self.x), 2), dtype="<f8")
        coords[:, 0], coords[:, 1] = x, y
        data, build = coords.tobytes(), (_polygon if self.kind == "polygon" else _multipolygon)
        return [build(int(row), data, offsets) for row in rows]


def _coordinates(array):
    """x and y (float64) of an Arrow coordinate array: a struct with x/y fields or a fixed-size list [x, y, ...]."""
    import pyarrow as pa

    if pa.types.is_struct(array.type):
        children = dict(zip([f.name for f in array.type], array.flatten()))
        return _floats(children["x"]), _floats(children["y"])
    if pa.types.is_fixed_size_list(array.type):
        size = array.type.list_size
        values = array.values.slice(array.offset * size, len(array) * size)  # also under null slots, kept aligned
        flat = _floats(values).reshape(len(array), size)
        return flat[:, 0].copy(), flat[:, 1].copy()
    raise WkbError(f"geometry coordinates of type {array.type} are not GeoArrow coordinates")


def _multipoint(row, records, size, offsets):
    first, last = offsets[0][row], offsets[0][row + 1]
    return struct.pack("<BII", 1, 4, last - first) + records[size * first : size * last]


def _rings(first, last, data, ring_offsets):
    return b"".join(
        struct.pack("<I", ring_offsets[k + 1] - ring_offsets[k]) + data[16 * ring_offsets[k] : 16 * ring_offsets[k + 1]]
        for k in range(first, last)
    )


def _polygon(row, data, offsets):
    first, last = offsets[0][row], offsets[0][row + 1]
    return struct.pack("<BII", 1, 3, last - first) + _rings(first, last, data, offsets[1])


def _multipolygon(row, data, offsets):
    first, last = offsets[0][row], offsets[0][row + 1]
    parts = [
        struct.pack("<BII", 1, 3, offsets[1][p + 1] - offsets[1][p]) + _rings(offsets[1][p], offsets[1][p + 1], data, offsets[2])
        for p in range(first, last)
    ]
    return struct.pack("<BII", 1, 6, last - first) + b"".join(parts)
