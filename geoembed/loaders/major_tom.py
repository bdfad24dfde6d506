"""Major TOM embeddings (ESA Phi-lab): parquet shards of overlapping fragments per 10 km grid cell.

Columns from the producer's embedder (unique_id, embedding, timestamp, grid_cell, geometry as bare WKB
in WGS 84, ...). Several fragments overlap and a cell has several timestamps: each pixel takes the
fragment whose footprint contains its centre, the latest timestamp first, then the nearest fragment
centre. The model is told by the embedding length: 2048 SSL4EO, 768 DINOv2, 1152 SigLIP.
"""

from . import catalog
from .patch_files import PatchLayout, parquet_files
from .patches import plan_patch_product

PRODUCT = catalog.MAJOR_TOM
LAYOUT = PatchLayout(embedding_columns=("embedding",), id_columns=("unique_id",), date_columns=("timestamp",), band_prefix="MT")
MODELS = {2048: "SSL4EO ResNet50", 768: "DINOv2 (dinov2-base)", 1152: "SigLIP ViT-SO400M-14"}
WHAT = "Major TOM embedding parquet shards"


def accept(schema, path):
    return "embedding" in schema.names and "grid_cell" in schema.names


def variant(schema, dims):
    return f"{MODELS.get(dims, 'unknown model')} ({dims}-d)"


def recognise_source(source):
    files = parquet_files(source, accept)
    return f"{len(files)} Major TOM shard(s)" if files else None


def plan(request, log, client=None):
    return plan_patch_product(request, log, PRODUCT, accept, LAYOUT, variant, WHAT)
