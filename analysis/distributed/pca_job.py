"""geoembed:pca on a Dask cluster: the projection is fitted (or loaded) once in the client; workers only project
their pieces' blocks onto it, with the model's arrays sent to them as plain data."""

from ...loaders.raster.writer import BLOCK
from ..pca import PcaModel
from .jobs import run_job
from .pieces import Scratch
from .tasks import open_piece_input, write_piece


def model_payload(model):
    """What a worker needs of a PcaModel to colour pixels: its arrays and names (no fitting statistics)."""
    return {
        "mean": model.mean,
        "axes": model.axes,
        "lows": model.lows,
        "highs": model.highs,
        "band_names": list(model.band_names),
        "product": model.product,
        "percentiles": list(model.percentiles),
    }


def model_from_payload(payload):
    return PcaModel(
        payload["mean"],
        payload["axes"],
        payload["lows"],
        payload["highs"],
        payload["band_names"],
        payload["product"],
        payload["percentiles"],
    )


def pca(settings, source, allow_outside, grid, model, spec, log, progress=None, **options):
    """Write the RGB composite of model.produce over the raster at source (opened by the client on grid) to spec, as
    write_rasters(grid, [spec], lambda w: [model.produce(raster.read(w))]) does. options: those of jobs.run_job."""
    job = {
        "source": source,
        "allow_outside": bool(allow_outside),
        "grid": grid,
        "block": BLOCK,
        "specs": [spec],
        "model": model_payload(model),
    }
    run_job(settings, pca_piece, job, log, progress, **options)
    return spec.path


def pca_piece(job, piece, scratch_path):
    """geoembed:pca's colouring of one piece."""
    scratch = Scratch("", scratch_path)
    scratch.check()
    model = model_from_payload(job["model"])
    view = open_piece_input(job, piece)
    try:
        write_piece(job, piece, scratch, lambda window: [model.produce(view.read(window))])
    finally:
        view.close()
