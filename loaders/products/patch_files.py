"""Reading patch products' GeoParquet files: the rows (geometry, id, date, embedding) that meet an extent.

Reading uses column projection and row groups: first what places the rows (a GeoParquet 1.1 bbox covering
when the file has one, else the geometry column, else centre lon/lat columns) to find the rows in the extent,
then embeddings only for the row groups holding such rows. Row groups whose Parquet statistics (of the
covering, or of a native encoding's x/y) lie outside the extent are not read at all. Whatever the encoding
on disk (WKB or GeoArrow), geometries come out as lon/lat WKB.
"""

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pyproj import CRS
from pyproj.exceptions import CRSError

from ..errors import Cancelled, GeoEmbedError
from ..limits import MAX_EMBEDDING_WIDTH, check_list_width, read_limit_bytes, refuse, size_text
from ..raster.grid import boxes_overlap, transform_bounds, transformer
from ..raster.planning import fmt
from ..remote.locations import is_url
from .geoparquet import (
    NATIVE_DEPTH,
    NativeBatch,
    WkbBatch,
    WkbError,
    column_metadata,
    covering_bounds,
    covering_column,
    geo_metadata,
    geometry_column,
    geometry_encoding,
    native_coordinate_paths,
    open_parquet,
    row_group_box,
)

LONLAT = "OGC:CRS84"


@dataclass
class PatchTable:
    """Patches in lon/lat: WKB geometries, ids, dates (ISO text or None), embeddings (n, dims) float32."""

    geometries: list
    ids: list
    dates: list
    embeddings: np.ndarray
    band_names: tuple
    sources: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    def __len__(self):
        return len(self.geometries)


@dataclass
class PatchLayout:
    """How one product names its columns."""

    embedding_columns: tuple
    id_columns: tuple = ()
    date_columns: tuple = ()
    band_prefix: str = "E"
    date_of_file: object = None  # callable(path, schema) -> ISO date, for files without a date column
    point_columns: tuple = ()  # (lon, lat) columns that place a patch when the file has no geometry column
    product: str = "patch product"  # as named in "the file may be damaged or not a <product> file"


def embedding_column(schema, layout):
    for name in layout.embedding_columns:
        if name in schema.names:
            return name
    return None


def file_crs(schema, path, log):
    """CRS of the geometry column: GeoParquet metadata, else lon/lat (said in the log)."""
    name = os.path.basename(path)
    meta = geo_metadata(schema)
    column = geometry_column(schema)
    if meta is None or column not in meta.get("columns", {}):
        log.warning(f"{name} has no GeoParquet CRS; assuming lon/lat (WGS 84), as its producer does.")
        return LONLAT
    entry = column_metadata(schema, column)
    if "crs" not in entry:
        return LONLAT  # GeoParquet: a missing crs means OGC:CRS84
    if entry["crs"] is None:
        log.warning(f"{name} declares its CRS unknown (crs: null); assuming lon/lat (WGS 84).")
        return LONLAT
    parsed = parse_crs(entry["crs"])
    if parsed is None:
        raise GeoEmbedError(
            f"The CRS of {name} could not be read from its GeoParquet metadata; rewrite the file with a complete "
            "PROJJSON CRS (or an EPSG/OGC id), e.g. with geopandas to_parquet after set_crs."
        )
    # GeoParquet stores x = longitude whatever the CRS's declared axis order (e.g. EPSG:4326).
    wgs84 = parsed.is_geographic and parsed.datum is not None and parsed.datum.name.startswith("World Geodetic System 1984")
    return LONLAT if wgs84 else parsed.to_wkt()


def parse_crs(crs):
    """A pyproj CRS from a GeoParquet crs value (PROJJSON object or string), or None when nothing builds one.

    Real writers leave PROJJSON that PROJ cannot build alone (only an `id`, or a partial object): then the
    object's id (authority:code) is used, as the GeoParquet specification allows for OGC:CRS84 / EPSG:4326.
    """
    try:
        if isinstance(crs, str):
            return CRS.from_user_input(crs)
        if isinstance(crs, dict):
            try:
                return CRS.from_json_dict(crs)
            except CRSError:
                ident = crs.get("id") or next(iter(crs.get("ids") or []), None)
                if isinstance(ident, dict) and ident.get("authority") and ident.get("code") is not None:
                    return CRS.from_user_input(f"{ident['authority']}:{ident['code']}")
    except CRSError:
        return None
    return None


def file_bbox(schema):
    """The file's bbox from its GeoParquet metadata (lon/lat for the usual CRS84 files), or None."""
    bbox = column_metadata(schema, geometry_column(schema)).get("bbox")
    if isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, (int, float)) for v in bbox):
        return tuple(bbox)
    return None


@dataclass
class _Rows:
    """The rows of one file that meet the extent."""

    path: str
    geometries: list = field(default_factory=list)
    ids: list = field(default_factory=list)
    dates: list = field(default_factory=list)
    vectors: list = field(default_factory=list)
    dims: int = None


def read_patches(paths, wgs84, layout, log, is_cancelled=None):
    """A PatchTable of the rows of all files whose geometry meets the lon/lat extent (all rows without one)."""
    read, empty = [], []
    for path in paths:
        rows = _read_guarded(path, wgs84, layout, log, is_cancelled)
        if rows is None:
            empty.append(os.path.basename(path))
        elif rows.geometries:
            if read and rows.dims != read[0].dims:
                raise GeoEmbedError(
                    f"{os.path.basename(path)}: embeddings of different lengths {sorted({read[0].dims, rows.dims})} in one "
                    "SOURCE; give one product variant."
                )
            read.append(rows)
    if empty and len(empty) == len(paths):
        raise GeoEmbedError(_no_embeddings(empty))
    if empty:
        log.warning(f"Skipped {len(empty)} file(s) that hold no embeddings (0 rows): {', '.join(empty[:5])}.")
    if not read:
        raise GeoEmbedError(f"No patch in SOURCE meets the extent {fmt(wgs84)} (lon/lat); check EXTENT and its CRS.")
    dims = read[0].dims
    names = tuple(f"{layout.band_prefix}{i:04d}" if dims > 999 else f"{layout.band_prefix}{i:03d}" for i in range(dims))
    return PatchTable(
        [g for rows in read for g in rows.geometries],
        [None if i is None else str(i) for rows in read for i in rows.ids],
        [d for rows in read for d in rows.dates],
        np.concatenate([v for rows in read for v in rows.vectors]),
        names,
        [rows.path for rows in read],
    )


def _no_embeddings(names):
    if len(names) == 1:
        return f"{names[0]} holds no embeddings (0 rows): it is an empty or schema-only file; give a file with patches."
    listed = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return f"{listed} hold no embeddings (0 rows): they are empty or schema-only files; give files with patches."


def _read_guarded(path, wgs84, layout, log, is_cancelled):
    """_read_file, with anything unexpected turned into one line that names the file (cancel and our errors pass)."""
    name = os.path.basename(path)
    try:
        return _read_file(path, wgs84, layout, log, is_cancelled)
    except WkbError as exc:
        raise GeoEmbedError(_cannot_read(name, str(exc).rstrip("."), layout)) from exc
    except GeoEmbedError:
        raise
    except Exception as exc:  # noqa: BLE001 - pyarrow, struct, numpy and PROJ errors of a damaged file
        lines = str(exc).strip().splitlines()
        what = f"{type(exc).__name__}: {lines[0][:200]}" if lines else type(exc).__name__
        raise GeoEmbedError(_cannot_read(name, what, layout)) from exc


def _cannot_read(name, what, layout):
    article = "an" if layout.product[:1].upper() in "AEIOU" else "a"
    return f"Cannot read {name}: {what}; the file may be damaged or not {article} {layout.product} file."


def _read_file(path, wgs84, layout, log, is_cancelled):
    """_Rows of one file meeting the extent (no geometries when none does); None when the file has no rows at all."""
    parquet = open_parquet(path)
    schema = parquet.schema_arrow
    name = os.path.basename(path)
    rows = _Rows(path)
    if parquet.metadata.num_rows == 0:
        return None
    column = embedding_column(schema, layout)
    if column is None:
        wanted = " or ".join(layout.embedding_columns)
        raise GeoEmbedError(f"{name} has no embedding column ({wanted}); it is not a file of this product.")
    check_row_groups(parquet, name, column)
    places = _Placement(parquet, path, layout, log)
    box = file_bbox(schema) if places.geometry else None
    if wgs84 is not None and box is not None and places.crs == LONLAT and not boxes_overlap(box, wgs84):
        return rows  # the whole file is elsewhere: not even its geometries are read
    extent = wgs84 if places.crs == LONLAT or wgs84 is None else transform_bounds("EPSG:4326", places.crs, wgs84)
    id_column = next((c for c in layout.id_columns if c in schema.names), None)
    date_column = next((c for c in layout.date_columns if c in schema.names), None)
    file_date = layout.date_of_file(path, schema) if layout.date_of_file and not date_column else None
    for group in range(parquet.num_row_groups):
        if is_cancelled and is_cancelled():
            raise Cancelled()
        if not places.group_may_meet(group, extent):
            continue
        keep, geometries = places.select(group, extent)
        if not len(keep):
            continue
        columns = [column] + [c for c in (id_column, date_column) if c]
        table = parquet.read_row_group(group, columns=columns).take(keep)
        vectors = table.column(column)
        if vectors.null_count:  # a row without an embedding has nothing to show
            present = np.asarray(vectors.is_valid())
            table, geometries = table.filter(present), [g for g, p in zip(geometries, present) if p]
            vectors = table.column(column)
        rows.vectors.append(_matrix(vectors, name, rows))
        rows.geometries.extend(geometries)
        rows.ids.extend(table.column(id_column).to_pylist() if id_column else [None] * len(geometries))
        if date_column:
            rows.dates.extend(_iso(v) for v in table.column(date_column).to_pylist())
        else:
            rows.dates.extend([file_date] * len(geometries))
    return rows


def check_row_groups(parquet, name, column):
    """Refuse (limits.ImplausibleFile) a file whose metadata lies or whose rows no embedding file has, before any row
    group is read: pyarrow sizes its buffers from these counts. The embedding column's declared width (a fixed-size
    list) or its values per row (a variable list: the row group's value count over its rows) must be an embedding's;
    row counts must add up, and a column without lists has exactly one value per row; a row group must fit in memory."""
    meta = parquet.metadata
    field_type = parquet.schema_arrow.field(column).type
    if hasattr(field_type, "list_size"):  # fixed_size_list: the width is in the schema
        check_list_width(name, column, field_type.list_size)
    groups = [meta.row_group(index) for index in range(meta.num_row_groups)]
    total = sum(group.num_rows for group in groups)
    if total != meta.num_rows or any(group.num_rows < 0 for group in groups):
        refuse(name, f"{meta.num_rows} rows", f"its {len(groups)} row group(s) hold {total}: the metadata lies")
    repeated = [meta.schema.column(i).max_repetition_level > 0 for i in range(meta.num_columns)]
    limit = read_limit_bytes()
    for index, group in enumerate(groups):
        where = f"row group {index}"
        if group.total_byte_size > limit:
            refuse(name, f"{size_text(group.total_byte_size)} in {where}", f"a read may take {size_text(limit)}")
        for i in range(group.num_columns):
            chunk = group.column(i)
            path = chunk.path_in_schema
            if not repeated[i] and chunk.num_values != group.num_rows:
                refuse(name, f"{chunk.num_values} values of {path} in {where} of {group.num_rows} rows", "the counts must match")
            if path.split(".")[0] == column and repeated[i]:
                per_row = -(-chunk.num_values // max(group.num_rows, 1))
                if per_row > MAX_EMBEDDING_WIDTH:
                    check_list_width(name, column, per_row)
                if chunk.num_values * 4 > limit:
                    refuse(name, f"{chunk.num_values} embedding values in {where}", f"a read may take {size_text(limit)}")


def _matrix(vectors, name, rows):
    """float32 (n, dims) of an Arrow list column; the length must be one for the whole file."""
    import pyarrow.compute as pc

    lengths = pc.list_value_length(vectors).to_numpy(zero_copy_only=False)
    if lengths.size and (lengths.min() != lengths.max() or (rows.dims is not None and lengths[0] != rows.dims)):
        found = sorted({*lengths.tolist(), *([rows.dims] if rows.dims else [])})
        raise GeoEmbedError(f"{name}: embeddings of different lengths {found[:4]} in one SOURCE; give one product variant.")
    if lengths.size and lengths[0] == 0:
        raise GeoEmbedError(f"{name}: its embeddings are empty (0 values); give a file with embedding vectors.")
    rows.dims = int(lengths[0]) if lengths.size else rows.dims
    flat = pc.list_flatten(vectors).to_numpy(zero_copy_only=False)
    return np.asarray(flat, dtype=np.float32).reshape(len(lengths), rows.dims or 0)


class _Placement:
    """Where a file's rows are: which columns to read to find the rows meeting an extent, and their lon/lat WKB."""

    def __init__(self, parquet, path, layout, log):
        schema, name = parquet.schema_arrow, os.path.basename(path)
        self.parquet = parquet
        self.geometry = geometry_column(schema)
        self.points = self.move = None
        self.covering = self.stats_paths = None
        if self.geometry is None:
            lon_lat = layout.point_columns
            if not lon_lat or not all(c in schema.names for c in lon_lat):
                raise GeoEmbedError(f"{name} has no geometry column; cannot place its patches.")
            self.points, self.crs = tuple(lon_lat), LONLAT  # centre lon/lat columns are lon/lat by definition
            return
        self.encoding = geometry_encoding(schema, self.geometry)
        if self.encoding != "WKB" and self.encoding not in NATIVE_DEPTH:
            raise GeoEmbedError(
                f"{name}: its geometry encoding {self.encoding!r} cannot hold patch footprints; "
                "give a file whose geometries are points or polygons."
            )
        self.crs = file_crs(schema, path, log)
        self.covering = covering_column(schema, self.geometry)
        if self.covering:
            self.stats_paths = tuple(f"{self.covering}.{f}" for f in ("xmin", "ymin", "xmax", "ymax"))
        elif self.encoding != "WKB":
            xy = native_coordinate_paths(parquet, self.geometry)
            self.stats_paths = xy * 2 if xy else None
        self.move = None if self.crs == LONLAT else transformer(self.crs, "EPSG:4326")

    def group_may_meet(self, group, extent):
        """False when the row group's statistics put all its rows outside the extent."""
        if extent is None or self.stats_paths is None:
            return True
        box = row_group_box(self.parquet, group, *self.stats_paths)
        return box is None or boxes_overlap(box, extent)

    def select(self, group, extent):
        """(row indices meeting the extent, their lon/lat WKB) of one row group."""
        if self.covering and extent is not None:  # the bbox picks the rows; only theirs are decoded
            boxes = covering_bounds(self._column(group, self.covering))
            keep = np.flatnonzero(_meets(boxes, extent))
            if not len(keep):
                return keep, []
            batch = self._decode(self._column(group, self.geometry).take(keep))
            return keep, batch.wkb(range(len(keep)), self.move)
        batch = self._decode(self._column(group, self.points or self.geometry))
        keep = np.flatnonzero(_meets(batch.bounds(), extent))
        return keep, batch.wkb(keep, self.move)

    def _column(self, group, names):
        """One row group's column (or, for a tuple of names, its table), as one Arrow array."""
        table = self.parquet.read_row_group(group, columns=list(names) if isinstance(names, tuple) else [names])
        return table if isinstance(names, tuple) else table.column(0).combine_chunks()

    def _decode(self, data):
        if self.points:
            lon, lat = (np.asarray(data.column(c).to_numpy(zero_copy_only=False), dtype=np.float64) for c in self.points)
            return NativeBatch.points(lon, lat)
        if self.encoding == "WKB":
            return WkbBatch(data.to_pylist())
        return NativeBatch.from_arrow(data, self.encoding)


def _meets(boxes, extent):
    """Boolean per row: its (n, 4) bounds meet the extent (every present geometry when extent is None)."""
    if extent is None:
        return np.isfinite(boxes).all(axis=1)
    return (boxes[:, 0] <= extent[2]) & (extent[0] <= boxes[:, 2]) & (boxes[:, 1] <= extent[3]) & (extent[1] <= boxes[:, 3])


def _iso(value):
    if value is None:
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


PARQUET_SUFFIXES = (".parquet", ".gpq", ".geoparquet")


def parquet_files(source, accept):
    """Parquet files under SOURCE (a file or a folder) whose schema accept(schema, path) likes."""
    if not source or is_url(source):
        return []
    path = Path(source)
    candidates = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.suffix.lower() in PARQUET_SUFFIXES)
    found, unreadable = [], []
    for candidate in candidates:
        if candidate.suffix.lower() not in PARQUET_SUFFIXES:
            continue
        try:
            schema = open_parquet(str(candidate)).schema_arrow
        except GeoEmbedError as exc:
            unreadable.append(exc)
            continue
        if accept(schema, str(candidate)):
            found.append(str(candidate))
    if unreadable and not found:  # a truncated download must not read as "no files here"
        raise GeoEmbedError(
            f"{str(unreadable[0]).rstrip('.')}; {len(unreadable)} file(s) under {source} could not be read: "
            "download them again (a cut-off download looks like this)."
        )
    return found
