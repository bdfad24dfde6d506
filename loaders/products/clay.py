"""Clay embeddings (GeoParquet): v0 Sentinel-2 (768-d, .gpq), v1.5 NAIP (1024-d), v1.5 Sentinel-2 (1024-d).

The variant is read from the columns: v0 has index/source_url/date and `embeddings`; v1.5 NAIP has only
`embeddings` and geometry (often without GeoParquet CRS: lon/lat is assumed and said); v1.5 Sentinel-2
has chips_id/datetime and `embedding`.
"""

from .. import catalog
from .patch_files import PatchLayout, parquet_files
from .patches import plan_patch_product

PRODUCT = catalog.CLAY
LAYOUT = PatchLayout(
    embedding_columns=("embeddings", "embedding"),
    id_columns=("chips_id", "index", "id"),
    date_columns=("datetime", "date"),
    band_prefix="CL",
    product="Clay",
)
WHAT = "Clay .gpq / .parquet files"


def accept(schema, path):
    names = set(schema.names)
    if "grid_cell" in names or {"centre_lon", "centre_lat"} <= names or b"emb" in (schema.metadata or {}):
        return False  # Major TOM (with or without grid_cell) / Earth Index
    return (
        "embeddings" in names
        or ("chips_id" in names and "embedding" in names)
        or (path.lower().endswith(".gpq") and "embedding" in names)
    )


def variant(schema, dims):
    names = set(schema.names)
    if "chips_id" in names:
        return f"v1.5 Sentinel-2 ({dims}-d)"
    if {"source_url", "date"} & names or dims == 768:
        return f"v0 Sentinel-2 ({dims}-d)"
    return f"v1.5 NAIP ({dims}-d)"


def recognise_source(source):
    files = parquet_files(source, accept)
    return f"{len(files)} Clay GeoParquet file(s)" if files else None


def plan(request, log, client=None):
    return plan_patch_product(request, log, PRODUCT, accept, LAYOUT, variant, WHAT)
