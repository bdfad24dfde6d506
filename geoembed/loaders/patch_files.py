"""Reading patch products' GeoParquet files: the rows (geometry, id, date, embedding) that meet an extent.

Reading uses column projection and row groups: geometries first (to find the rows in the extent),
then embeddings only for the row groups holding such rows. Geometries are kept as lon/lat WKB.
"""

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pyproj import CRS

from .errors import Cancelled, GeoEmbedError
from .geoparquet import geo_metadata, geometry_column, open_parquet, wkb_bounds, wkb_rings
from .grid import boxes_overlap, transform_bounds, transformer
from .planning import fmt
from .remote import is_url

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
    date_from_path: object = None  # callable(path) -> ISO date, for files without a date column


def embedding_column(schema, layout):
    for name in layout.embedding_columns:
        if name in schema.names:
            return name
    return None


def file_crs(schema, path, log):
    """CRS of the geometry column: GeoParquet metadata, else lon/lat (said in the log)."""
    meta = geo_metadata(schema)
    column = geometry_column(schema)
    if meta is None or column not in meta.get("columns", {}):
        log.warning(f"{os.path.basename(path)} has no GeoParquet CRS; assuming lon/lat (WGS 84), as its producer does.")
        return LONLAT
    crs = meta["columns"][column].get("crs", LONLAT)
    if crs is None:
        return LONLAT
    parsed = CRS.from_user_input(crs) if isinstance(crs, str) else CRS.from_json_dict(crs)
    # GeoParquet stores x = longitude whatever the CRS's declared axis order (e.g. EPSG:4326).
    return LONLAT if parsed.is_geographic and parsed.datum.name.startswith("World Geodetic System 1984") else parsed.to_wkt()


def file_bbox(schema):
    """The file's bbox from its GeoParquet metadata (lon/lat for the usual CRS84 files), or None."""
    meta = geo_metadata(schema)
    column = geometry_column(schema)
    if meta and column in meta.get("columns", {}):
        bbox = meta["columns"][column].get("bbox")
        if bbox and len(bbox) == 4:
            return tuple(bbox)
    return None


def read_patches(paths, wgs84, layout, log, is_cancelled=None):
    """A PatchTable of the rows of all files whose geometry meets the lon/lat extent (all rows without one)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    geometries, ids, dates, vectors, sources, dims = [], [], [], [], [], None
    for path in paths:
        parquet = open_parquet(path)
        schema = parquet.schema_arrow
        name = os.path.basename(path)
        column = embedding_column(schema, layout)
        if column is None:
            wanted = " or ".join(layout.embedding_columns)
            raise GeoEmbedError(f"{name} has no embedding column ({wanted}); it is not a file of this product.")
        geometry = geometry_column(schema)
        if geometry is None:
            raise GeoEmbedError(f"{name} has no geometry column; cannot place its patches.")
        crs = file_crs(schema, path, log)
        box = file_bbox(schema)
        if wgs84 is not None and box is not None and crs == LONLAT and not boxes_overlap(box, wgs84):
            continue  # the whole file is elsewhere: not even its geometries are read
        extent = wgs84 if crs == LONLAT or wgs84 is None else transform_bounds("EPSG:4326", crs, wgs84)
        id_column = next((c for c in layout.id_columns if c in schema.names), None)
        date_column = next((c for c in layout.date_columns if c in schema.names), None)
        for group in range(parquet.num_row_groups):
            if is_cancelled and is_cancelled():
                raise Cancelled()
            wkbs = parquet.read_row_group(group, columns=[geometry]).column(0).to_pylist()
            keep = [i for i, wkb in enumerate(wkbs) if wkb and (extent is None or _meets(wkb_bounds(wkb), extent))]
            if not keep:
                continue
            columns = [column] + [c for c in (id_column, date_column) if c]
            table = parquet.read_row_group(group, columns=columns).take(pa.array(keep))
            lengths = pc.list_value_length(table.column(column)).to_numpy(zero_copy_only=False)
            if lengths.size and (lengths.min() != lengths.max() or (dims is not None and lengths[0] != dims)):
                found = sorted({*lengths.tolist(), *([dims] if dims else [])})
                raise GeoEmbedError(
                    f"{name}: embeddings of different lengths {found[:4]} in one SOURCE; give one product variant."
                )
            dims = int(lengths[0])
            flat = pc.list_flatten(table.column(column)).to_numpy(zero_copy_only=False)
            vectors.append(np.asarray(flat, dtype=np.float32).reshape(len(keep), dims))
            selected = [wkbs[i] for i in keep]
            geometries.extend(selected if crs == LONLAT else [_to_lonlat(w, crs) for w in selected])
            ids.extend(table.column(id_column).to_pylist() if id_column else [None] * len(keep))
            if date_column:
                dates.extend(_iso(v) for v in table.column(date_column).to_pylist())
            else:
                dates.extend([layout.date_from_path(path) if layout.date_from_path else None] * len(keep))
            if path not in sources:
                sources.append(path)
    if not geometries:
        raise GeoEmbedError(f"No patch in SOURCE meets the extent {fmt(wgs84)} (lon/lat); check EXTENT and its CRS.")
    embeddings = np.concatenate(vectors)
    names = tuple(f"{layout.band_prefix}{i:04d}" if dims > 999 else f"{layout.band_prefix}{i:03d}" for i in range(dims))
    return PatchTable(geometries, [None if i is None else str(i) for i in ids], dates, embeddings, names, sources)


def _meets(box, extent):
    return box is not None and box[0] <= extent[2] and extent[0] <= box[2] and box[1] <= extent[3] and extent[1] <= box[3]


def _iso(value):
    if value is None:
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _to_lonlat(wkb, crs):
    """Re-express a projected WKB polygon in lon/lat (rare: the published patch files are lon/lat)."""
    import struct

    rings = wkb_rings(wkb)
    move = transformer(crs, "EPSG:4326")
    out = [struct.pack("<BII", 1, 3, len(rings))]
    for ring in rings:
        lon, lat = move.transform(ring[:, 0], ring[:, 1])
        out.append(struct.pack("<I", len(ring)) + np.column_stack([lon, lat]).astype("<f8").tobytes())
    return b"".join(out)


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
