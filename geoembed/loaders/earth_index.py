"""Earth Index embeddings (Earth Genome): {MGRS}_{start}_{end}.parquet, id + 384-d `embedding`, 320 m patches.

Geometries are patch polygons or their centroids (points become 320 m squares); the `emb` metadata
(model, licence, dates) is recorded in the output's notes.
"""

import json
import re
from pathlib import Path

from . import catalog
from .geoparquet import open_parquet
from .patch_files import PatchLayout, parquet_files
from .patches import plan_patch_product

PRODUCT = catalog.EARTH_INDEX
NAME = re.compile(r"^\d{2}[A-Z]{3}_(\d{4}-\d{2}-\d{2})_\d{4}-\d{2}-\d{2}\.parquet$")


def start_date(path):
    """The start date in the file name: Earth Index files hold one annual mosaic each."""
    match = NAME.match(Path(path).name)
    return match.group(1) if match else None


LAYOUT = PatchLayout(embedding_columns=("embedding",), id_columns=("id",), band_prefix="EI", date_from_path=start_date)
WHAT = "{MGRS}_{start}_{end}.parquet files"


def accept(schema, path):
    return (
        "embedding" in schema.names
        and "grid_cell" not in schema.names
        and (b"emb" in (schema.metadata or {}) or bool(NAME.match(Path(path).name)))
    )


def variant(schema, dims):
    model = _emb(schema).get("model", {}).get("id", "unknown model")
    return f"{model} ({dims}-d)"


def _emb(schema):
    try:
        return json.loads((schema.metadata or {}).get(b"emb", b"{}"))
    except ValueError:
        return {}


def notes(path):
    emb = _emb(open_parquet(path).schema_arrow)
    keys = ("start_datetime", "end_datetime", "license")
    return [f"Earth Index {key}: {emb[key]}" for key in keys if emb.get(key)]


def recognise_source(source):
    files = parquet_files(source, accept)
    return f"{len(files)} Earth Index file(s)" if files else None


def plan(request, log, client=None):
    return plan_patch_product(request, log, PRODUCT, accept, LAYOUT, variant, WHAT, notes_of=notes)
