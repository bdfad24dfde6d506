"""What a worker runs: one piece of one algorithm, from plain parameters (paths, arrays, the piece's window).

Each function opens the input itself, checks it has the grid the client planned on, computes the piece's blocks
with the analysis code a run in QGIS uses and writes them (writer.write_rasters) under the scratch folder. It
stops at the next block once the client cancels (Scratch.cancel), removing what it had begun.
"""

from ...loaders.errors import GeoEmbedError
from ...loaders.open import open_embeddings
from ...loaders.raster.writer import OutputSpec, write_rasters
from ..classify import ClassRasters, TrainedModel
from ..predictors import KINDS
from ..similarity import SimilarityRaster
from .pieces import PieceView, Scratch


class WorkerLog:
    """The loaders' log on a worker: its messages were already given by the client's own opening of the input."""

    def info(self, message):
        pass

    warning = debug = info


def open_piece_input(job, piece):
    """The job's input as a PieceView of the piece; a different grid than the client's (the input changed) is an
    error."""
    raster = open_embeddings(job["source"], WorkerLog(), allow_paths_outside_mirror=job["allow_outside"])
    if raster.grid != job["grid"]:
        raster.close()
        raise GeoEmbedError(f"INPUT {job['source']} changed while the cluster worked on it; run again.")
    return PieceView(raster, piece)


def piece_specs(job, piece, scratch):
    """The job's outputs as files of the piece (same types, nodata and predictor; metadata only on the merged
    output; a band scale neither: the merge copies the stored numbers)."""
    return [
        OutputSpec(scratch.piece_path(piece, index), spec.band_names, spec.data_type, spec.nodata, predictor=spec.predictor)
        for index, spec in enumerate(job["specs"])
    ]


def write_piece(job, piece, scratch, produce, ahead=False, order=None):
    """Write the piece's blocks: produce(output-grid window) -> one EmbeddingBlock per spec (ahead: the next block is
    produced while this one is written; order: the order of the blocks; see write_rasters)."""
    grid = job["grid"].window_grid(piece.window)
    specs = piece_specs(job, piece, scratch)
    shifted = lambda window: produce(piece.shift(window))  # noqa: E731
    write_rasters(grid, specs, shifted, None, scratch.is_cancelled, job["block"], ahead=ahead, order=order)


def similarity_piece(job, piece, scratch_path):
    """geoembed:similarity on one piece; returns its best matches (scores, rows, cols) on the output grid."""
    scratch = Scratch("", scratch_path)
    scratch.check()
    heatmap = SimilarityRaster(open_piece_input(job, piece), job["query"], job["negative"], job["k"], job["block"])
    try:
        write_piece(job, piece, scratch, lambda window: [heatmap.read(window)], order=heatmap.order)
    finally:
        heatmap.close()
    return heatmap.top.scores, heatmap.top.rows, heatmap.top.cols


def model_payload(model):
    """A TrainedModel as plain data: the predictor's kind, counts and arrays (as in a model file) and its fields."""
    predictor = model.estimator
    return {
        "kind": predictor.kind,
        "params": predictor.params(),
        "arrays": predictor.arrays(),
        "fields": {
            "class_names": list(model.class_names),
            "band_names": list(model.band_names),
            "product": model.product,
            "method": model.method,
            "report": model.report,
            "versions": model.versions,
        },
    }


def model_from_payload(payload):
    fields = payload["fields"]
    kind = KINDS[payload["kind"]]
    predictor = kind.from_arrays(payload["arrays"], payload["params"], len(fields["band_names"]), len(fields["class_names"]))
    return TrainedModel(predictor, **fields)


def classify_piece(job, piece, scratch_path):
    """geoembed:classify on one piece: the class map (and the confidence when job["specs"] has two outputs)."""
    scratch = Scratch("", scratch_path)
    scratch.check()
    view = open_piece_input(job, piece)
    producer = None
    try:
        producer = ClassRasters(view, model_from_payload(job["model"]))
        count = len(job["specs"])
        write_piece(job, piece, scratch, lambda window: producer.produce(window)[:count], order=producer.order)
    finally:
        if producer is not None and hasattr(producer, "close"):
            producer.close()  # its read ahead, before the input closes
        view.close()
