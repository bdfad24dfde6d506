"""The distributed runs providers start: geoembed:similarity and geoembed:classify over a cluster.

Each takes plain values (the input's path or URL, the grid the client opened it on, the query vector or the model,
the output specs) and gives what the run in QGIS gives: the same output files and, for similarity, the same best
matches. The query vector and the model are computed or loaded once, here in the client, and sent to the workers as
arrays.
"""

from contextlib import nullcontext

import numpy as np

from ...loaders.raster.writer import BLOCK, check_destination, check_space
from ..similarity import TopK
from .cluster import connect
from .pieces import Scratch, layout_for
from .runner import MERGE_SHARE, merge_pieces, run_tasks
from .tasks import classify_piece, model_payload, similarity_piece


def similarity(settings, source, allow_outside, grid, query, negative, k, spec, log, progress=None, **options):
    """The heatmap of SimilarityRaster(query, negative, k) written to spec; returns the best matches (a TopK)."""
    job = _job(source, allow_outside, grid, [spec])
    job.update(query=np.asarray(query), negative=None if negative is None else np.asarray(negative), k=int(k))
    found = run_job(settings, similarity_piece, job, log, progress, **options)
    return merge_top(k, found)


def classify(settings, source, allow_outside, grid, model, specs, log, progress=None, **options):
    """The class map (and confidence) of classify.ClassRasters(model) written to specs."""
    job = _job(source, allow_outside, grid, specs)
    job["model"] = model_payload(model)
    run_job(settings, classify_piece, job, log, progress, **options)


def _job(source, allow_outside, grid, specs):
    return {"source": source, "allow_outside": bool(allow_outside), "grid": grid, "block": BLOCK, "specs": list(specs)}


def run_job(settings, function, job, log, progress=None, piece_blocks=None, session=None):
    """Run function on every piece of job["grid"] on the cluster and merge the pieces into job["specs"]; returns the
    tasks' results in piece order. Nothing is left behind on failure or cancel: no piece, no output.

    progress(fraction) defaults to log.progress; piece_blocks: blocks per side of a piece (default: layout_for's
    choice); session: an open cluster session to use (by default one is opened on settings and closed before the
    merge, which frees the workers)."""
    grid, specs = job["grid"], job["specs"]
    for spec in specs:
        check_destination(spec.path)  # before any work, as write_rasters does
    check_space(grid, specs)
    progress = progress or getattr(log, "progress", None) or (lambda fraction: None)
    scratch = Scratch(specs[0].path).create()
    try:
        with _session(settings, session, log) as live:
            layout = layout_for(grid, live.worker_count(), job["block"], piece_blocks)
            log.info(f"{len(layout.pieces)} task(s) of up to {layout.size} x {layout.size} pixels on the Dask cluster.")
            results = run_tasks(live, function, job, layout, scratch, log, lambda f: progress(f * (1 - MERGE_SHARE)))
        merge_pieces(grid, specs, layout, scratch, lambda f: progress(1 - MERGE_SHARE + f * MERGE_SHARE), log.is_cancelled)
        return results
    finally:
        scratch.remove()


def _session(settings, session, log):
    return nullcontext(session) if session is not None else connect(settings, log)


def merge_top(k, found):
    """The k best of the pieces' best matches, ordered as TopK orders them (score, then north, then west)."""
    top = TopK(k)
    if k <= 0 or not found:
        return top
    scores = np.concatenate([piece[0] for piece in found])
    rows = np.concatenate([piece[1] for piece in found])
    cols = np.concatenate([piece[2] for piece in found])
    order = np.lexsort((cols, rows, -scores))[:k]
    top.scores, top.rows, top.cols = scores[order], rows[order], cols[order]
    return top
