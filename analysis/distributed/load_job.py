"""geoembed:load over a Dask cluster: the same output file as loaders.load.run, written from pieces.

The client plans the load as a run in QGIS does (the product, the grid, the tiles, the output type) and sends the
workers the request itself: plain values (SOURCE, PRODUCT, YEAR, EXTENT, CRS, ...). Each worker plans it again,
checks it got the client's grid, and writes its piece's blocks with the reads of a run in QGIS (de-quantisation,
Float32 or Int16 terms, nodata); only the tiles under its piece are read, by range requests for a remote mirror.
The client merges the pieces with the writer of a run in QGIS (same layout, band names, scale and GEOEMBED_*
metadata), then builds the OVERVIEWS from the merged file. YEARS: loaders.years.run_years with one job per year, all
in one cluster session.
"""

import os
from dataclasses import replace

from ...loaders import catalog
from ...loaders.errors import GeoEmbedError
from ...loaders.load import LoadResult, check_output_type, output_storage, plan
from ...loaders.raster import overviews
from ...loaders.raster.mosaic import onto_grid
from ...loaders.raster.writer import BLOCK, Storage, check_destination, embedding_spec
from ...loaders.years import run_years
from .cluster import LOCAL, connect
from .jobs import run_job
from .pieces import Scratch
from .tasks import WorkerLog, write_piece

WRITE_SHARE = 0.8  # of the progress bar with OVERVIEWS, for the pieces and the merge (the rest: the overviews)


class JobLog:
    """The loaders' log with the run's own cancel check (run_job looks at log.is_cancelled)."""

    def __init__(self, log, is_cancelled=None):
        self.log = log
        self._is_cancelled = is_cancelled

    def info(self, message):
        self.log.info(message)

    def warning(self, message):
        self.log.warning(message)

    def debug(self, message):
        debug = getattr(self.log, "debug", None)
        if debug is not None:
            debug(message)

    def is_cancelled(self):
        return bool(self._is_cancelled and self._is_cancelled())


def run(settings, request, log, progress=None, is_cancelled=None, session=None, piece_blocks=None):
    """loaders.load.run on the cluster settings name (or an open session): the same LoadResult and output file."""
    check_destination(request.output)
    check_output_type(request.output_type, request.product or "auto")  # refused before anything is read
    product_id, raster = plan(request, log)
    try:
        storage = output_storage(request, product_id, raster)  # before the metadata: int16 rewords the notes
        job_request = worker_request(settings, replace(request, product=product_id))
        writing = _share(progress, 0.0, WRITE_SHARE if request.overviews else 1.0)
        _write(settings, job_request, raster, raster.grid, storage, log, writing, is_cancelled, session, piece_blocks)
        if request.overviews:
            _build_overviews(request.output, product_id, storage is None, _share(progress, WRITE_SHARE, 1.0), is_cancelled)
        elif os.path.exists(request.output + ".ovr"):
            os.remove(request.output + ".ovr")  # a previous output's overviews: not of these values
    finally:
        raster.close()
    return LoadResult(request.output, product_id, raster.grid, raster.provenance, getattr(raster, "patches", None))


def run_years_on_cluster(settings, request, years, log, progress=None, is_cancelled=None, session=None, piece_blocks=None):
    """loaders.years.run_years on the cluster: one job per year, in one cluster session; returns the LoadResults."""

    def write(year_request, raster, grid, year_progress, year_cancelled, live):
        # the storage run_years gives a year's raster once on the grid (OUTPUT_TYPE=int16: AEF's terms)
        storage = output_storage(year_request, year_request.product, onto_grid(raster, grid))
        job_request = worker_request(settings, year_request)
        _write(settings, job_request, raster, grid, storage, log, year_progress, year_cancelled, live, piece_blocks)

    if session is not None:
        return run_years(request, years, log, progress, is_cancelled, write=lambda *a: write(*a, session))
    check_destination(request.output)  # before the cluster starts
    with connect(settings, log) as live:
        return run_years(request, years, log, progress, is_cancelled, write=lambda *a: write(*a, live))


def worker_request(settings, request):
    """The request the workers plan: the client's own, with the client's index cache only for workers on this
    machine (a remote worker caches in its own default folder)."""
    remote = settings is not None and settings.address != LOCAL
    return replace(request, cache_dir=None) if remote and request.cache_dir else request


def _write(settings, request, raster, grid, storage, log, progress, is_cancelled, session, piece_blocks):
    """Write raster (planned by the client from request, then put onto grid) to request.output from pieces."""
    storage = storage or Storage()
    spec = embedding_spec(raster, request.output, storage)
    job = {
        "request": request,
        "planned_grid": raster.grid,
        "band_names": tuple(raster.band_names),
        "grid": grid,
        "block": getattr(raster, "block_size", BLOCK),  # the windows write_geotiff would read
        "specs": [spec],
    }
    run_job(settings, load_piece, job, JobLog(log, is_cancelled), progress, piece_blocks, session)


def _build_overviews(output, product_id, float32, progress, is_cancelled):
    """The overviews a run in QGIS gives: OUTPUT.ovr for Float32 (its OverviewTee), internal ones for Int16. If that
    fails or is cancelled, the output goes too (a load either completes or leaves nothing)."""
    try:
        overviews.build(output, catalog.has_unit_vectors(product_id), progress, is_cancelled, external=float32)
    except BaseException:
        for path in (output, output + ".ovr"):
            if os.path.exists(path):
                os.remove(path)
        raise


def _share(progress, start, end):
    if progress is None:
        return lambda fraction: None
    return lambda fraction: progress(start + fraction * (end - start))


# --- on a worker ---------------------------------------------------------------------------------------------


def open_load_input(job):
    """The job's raster as the client had it: planned from the request, checked, put onto the job's grid."""
    request = job["request"]
    product_id, raster = plan(request, WorkerLog())
    if raster.grid != job["planned_grid"] or tuple(raster.band_names) != job["band_names"]:
        raster.close()
        raise GeoEmbedError(f"SOURCE {request.source} changed while the cluster worked on it; run again.")
    return product_id, onto_grid(raster, job["grid"])


def load_piece(job, piece, scratch_path):
    """geoembed:load on one piece: the blocks of the output (Float32 values or Int16 terms) under the piece."""
    scratch = Scratch("", scratch_path)
    scratch.check()
    product_id, raster = open_load_input(job)
    try:
        storage = output_storage(job["request"], product_id, raster)
        read = storage.read if storage is not None and storage.read is not None else raster.read
        write_piece(job, piece, scratch, lambda window: [read(window)], ahead=True)  # reads overlap writes, as in QGIS
    finally:
        raster.close()
