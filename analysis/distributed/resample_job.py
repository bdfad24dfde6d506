"""geoembed:resample on a Dask cluster: the pieces are cut from the OUTPUT grid (which is not the input's).

Each worker opens the source itself, checks it still has the grid the client planned on, and computes its output
blocks with analysis/resample.py on the whole output grid, so that every block is computed from the same source
windows, in the same order, as in a run in QGIS; it reads only the source under its piece.
"""

from ...loaders.errors import GeoEmbedError
from ...loaders.model import NODATA
from ...loaders.open import open_embeddings
from ...loaders.raster.writer import BLOCK, EMBEDDING_PREDICTOR, OutputSpec, provenance_metadata
from .. import resample as resampling
from .jobs import run_job
from .pieces import Scratch
from .tasks import WorkerLog, write_piece

MODES = ("nearest", "aggregate")


def output_spec(raster, path):
    """The OutputSpec writer.write_geotiff gives a resampled raster (Float32, embedding predictor, provenance)."""
    return OutputSpec(
        path, raster.band_names, nodata=NODATA, metadata=provenance_metadata(raster.provenance), predictor=EMBEDDING_PREDICTOR
    )


def resample(settings, source, allow_outside, raster, grid, mode, path, log, progress=None, **options):
    """Write raster (opened by the client from source, a path or URL) resampled onto grid with mode ('nearest' or
    'aggregate') to path: the file write_geotiff(nearest(raster, grid) or AggregateRaster(raster, grid), path) gives.
    raster.provenance.resampling says how, as in a run in QGIS. options: those of jobs.run_job."""
    if mode not in MODES:
        raise ValueError(f"unknown resampling mode {mode}")
    block = BLOCK
    if mode == "aggregate":
        resampling.require_coarser(raster, grid)
        block = resampling.aggregate_block_size(raster, grid)
    job = {
        "source": source,
        "allow_outside": bool(allow_outside),
        "source_grid": raster.grid,
        "grid": grid,
        "block": block,
        "mode": mode,
        "specs": [output_spec(raster, path)],
    }
    run_job(settings, resample_piece, job, log, progress, **options)
    return path


def open_source(job):
    """The job's source raster, refused when its grid is no longer the one the client opened (the input changed)."""
    raster = open_embeddings(job["source"], WorkerLog(), allow_paths_outside_mirror=job["allow_outside"])
    if raster.grid != job["source_grid"]:
        raster.close()
        raise GeoEmbedError(f"INPUT {job['source']} changed while the cluster worked on it; run again.")
    return raster


def resample_piece(job, piece, scratch_path):
    """geoembed:resample on one piece of the output grid."""
    scratch = Scratch("", scratch_path)
    scratch.check()
    source = open_source(job)
    result = None
    try:
        if job["mode"] == "aggregate":  # read ahead only under this piece
            result = resampling.AggregateRaster(source, job["grid"], region=piece.window)
        else:
            result = resampling.nearest(source, job["grid"])
        write_piece(job, piece, scratch, lambda window: [result.read(window)])
    finally:
        (result or source).close()  # the derived raster waits for its read ahead, then closes the source
