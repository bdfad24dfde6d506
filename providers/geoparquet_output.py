"""Sampled QGIS point features as GeoParquet (WKB points + attributes + one float32 column per band)."""

import json
import struct

from ..loaders.products.geoparquet import pyarrow_parquet
from ..loaders.remote.locations import atomic_file


def write_points_parquet(path, entries, fields, band_names, values, valid, crs_wkt):
    """entries: [(feature, ("point", (x, y)))] with coordinates in the points' own CRS (feature geometry)."""
    import pyarrow as pa

    pq = pyarrow_parquet()
    columns = {}
    for index in range(fields.count()):
        name = fields.at(index).name()
        columns[name] = [_plain(feature.attributes()[index]) for feature, _ in entries]
    for band, name in enumerate(band_names):
        columns[name] = pa.array([float(v) if ok else None for v, ok in zip(values[:, band], valid)], type=pa.float32())
    geometries, xs, ys = [], [], []
    for feature, _ in entries:
        point = feature.geometry().asPoint()  # one point per entry (multi-points arrive split)
        geometries.append(struct.pack("<BIdd", 1, 1, point.x(), point.y()))
        xs.append(point.x())
        ys.append(point.y())
    columns["geometry"] = pa.array(geometries, type=pa.binary())
    table = pa.table(columns)
    geo = {
        "version": "1.0.0",
        "primary_column": "geometry",
        "columns": {
            "geometry": {
                "encoding": "WKB",
                "geometry_types": ["Point"],
                "bbox": [min(xs), min(ys), max(xs), max(ys)],
                "crs": _projjson(crs_wkt),
            }
        },
    }
    table = table.replace_schema_metadata({b"geo": json.dumps(geo).encode()})
    with atomic_file(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return path


def _projjson(wkt):
    from pyproj import CRS

    return json.loads(CRS.from_wkt(wkt).to_json())


def _plain(value):
    """QVariant NULLs and Qt types to plain Python for pyarrow."""
    if value is None or (hasattr(value, "isNull") and value.isNull()):
        return None
    if hasattr(value, "toPyDateTime"):
        return value.toPyDateTime().isoformat()
    if hasattr(value, "toPyDate"):
        return value.toPyDate().isoformat()
    return value if isinstance(value, (int, float, str, bool)) else str(value)
