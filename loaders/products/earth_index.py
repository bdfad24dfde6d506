"""Earth Index embeddings (Earth Genome): {MGRS}_{start}_{end}.parquet (or just {MGRS}.parquet), id + 384-d `embedding`.

Geometries are 320 m patch polygons or their centroids (points become 320 m squares); the `emb` metadata
(model, licence, dates) is recorded in the output's notes, and gives the date of a file whose name has none.
"""

import json
import re
from pathlib import Path

from .. import catalog
from .geoparquet import open_parquet
from .patch_files import PatchLayout, parquet_files
from .patches import plan_patch_product

PRODUCT = catalog.EARTH_INDEX
NAME = re.compile(r"^\d{2}[A-Z]{3}_(\d{4}-\d{2}-\d{2})_\d{4}-\d{2}-\d{2}\.parquet$")
BARE_NAME = re.compile(r"^\d{2}[A-Z]{3}\.parquet$")  # the published schema sample: the MGRS square only
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def start_date(path):
    """The start date in the file name: Earth Index files hold one annual mosaic each."""
    match = NAME.match(Path(path).name)
    return match.group(1) if match else None


def file_date(path, schema):
    """The file's date: the start date in its name, else the date part of the `emb` metadata's start_datetime."""
    named = start_date(path)
    if named:
        return named
    start = _emb(schema).get("start_datetime")
    match = ISO_DATE.match(start) if isinstance(start, str) else None
    return match.group(0) if match else None


LAYOUT = PatchLayout(
    embedding_columns=("embedding",), id_columns=("id",), band_prefix="EI", date_of_file=file_date, product="Earth Index"
)
WHAT = "{MGRS}_{start}_{end}.parquet (or {MGRS}.parquet) files"


def accept(schema, path):
    names = set(schema.names)
    if "embedding" not in names or "grid_cell" in names or {"centre_lon", "centre_lat"} <= names:
        return False  # Major TOM shards
    name = Path(path).name
    return b"emb" in (schema.metadata or {}) or bool(NAME.match(name) or BARE_NAME.match(name))


def variant(schema, dims):
    model = _emb(schema).get("model")
    model = model.get("id") if isinstance(model, dict) else None
    return f"{model or 'unknown model'} ({dims}-d)"


def _emb(schema):
    """The `emb` metadata as a dict ({} when absent or not a JSON object)."""
    try:
        emb = json.loads((schema.metadata or {}).get(b"emb", b"{}"))
    except ValueError:
        return {}
    return emb if isinstance(emb, dict) else {}


def notes(path):
    emb = _emb(open_parquet(path).schema_arrow)
    keys = ("start_datetime", "end_datetime", "license")
    return [f"Earth Index {key}: {emb[key]}" for key in keys if emb.get(key)]


def recognise_source(source):
    files = parquet_files(source, accept)
    return f"{len(files)} Earth Index file(s)" if files else None


def plan(request, log, client=None):
    return plan_patch_product(request, log, PRODUCT, accept, LAYOUT, variant, WHAT, notes_of=notes)
