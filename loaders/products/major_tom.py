"""Major TOM embeddings (ESA Phi-lab): parquet shards of overlapping fragments per 10 km grid cell.

Columns from the producer's embedder (unique_id, embedding, timestamp, grid_cell, geometry as bare WKB
in WGS 84, ...). Several fragments overlap and a cell has several timestamps: each pixel takes the
fragment whose footprint contains its centre, the latest timestamp first, then the nearest fragment
centre. The model is told by the embedding length: 2048 SSL4EO, 768 DINOv2, 1152 SigLIP.

Shards read by TorchGeo's MajorTOMEmbeddings (and the ML4Sustain EarthEmbeddings files) may lack `grid_cell`:
their rows are placed by `centre_lon`/`centre_lat`, or by their geometry when they have one.
"""

from .. import catalog
from .patch_files import PatchLayout, parquet_files
from .patches import plan_patch_product

PRODUCT = catalog.MAJOR_TOM
CENTRE = ("centre_lon", "centre_lat")
LAYOUT = PatchLayout(
    embedding_columns=("embedding",),
    id_columns=("unique_id",),
    date_columns=("timestamp",),
    band_prefix="MT",
    point_columns=CENTRE,
    product="Major TOM",
)
MODELS = {2048: "SSL4EO ResNet50", 768: "DINOv2 (dinov2-base)", 1152: "SigLIP ViT-SO400M-14"}
FRAGMENT_M = {1152: 3840.0}  # SigLIP crops 384 px of 10 m; SSL4EO and DINOv2 crop 224 px (the catalog's 2240 m)
WHAT = "Major TOM embedding parquet shards"


def accept(schema, path):
    names = set(schema.names)
    return "embedding" in names and ("grid_cell" in names or set(CENTRE) <= names)


def variant(schema, dims):
    return f"{MODELS.get(dims, 'unknown model')} ({dims}-d)"


def recognise_source(source):
    files = parquet_files(source, accept)
    return f"{len(files)} Major TOM shard(s)" if files else None


def plan(request, log, client=None):
    return plan_patch_product(request, log, PRODUCT, accept, LAYOUT, variant, WHAT, point_size_m=fragment_size)


def fragment_size(dims):
    """Side in metres of the fragment a centre point stands for, by model (told by the embedding length)."""
    return FRAGMENT_M.get(dims, PRODUCT.resolution_m)
