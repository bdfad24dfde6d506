"""The client's side of a distributed run: submit one task per piece, follow them, stop them, merge the pieces."""

import contextlib
import time

import numpy as np
from osgeo import gdal

from ...loaders.errors import Cancelled, GeoEmbedError
from ...loaders.model import EmbeddingBlock
from ...loaders.raster.gdal_io import gdal_call
from ...loaders.raster.writer import write_rasters

POLL_S = 0.1  # how often progress and Cancel are looked at while tasks run
STOP_GRACE_S = 30  # a remote cluster's running tasks get this long to see the cancel file before the folder goes
MERGE_SHARE = 0.1  # of the progress bar, for merging the pieces into the output


def run_tasks(session, function, job, layout, scratch, log, progress=None):
    """function(job, piece, scratch folder) for every piece of the layout, on the cluster; their results in piece
    order. progress(fraction) as tasks finish; log.is_cancelled() is looked at all along. On a cancel or a failure
    every task is stopped (local workers end with the session) and the error is raised as one line."""
    client = session.client
    [shared] = client.scatter([job], broadcast=True, hash=False)  # sent once to each worker, not once per task
    futures = [client.submit(function, shared, piece, scratch.path, pure=False) for piece in layout.pieces]
    try:
        _follow(futures, log, progress)
        return [future.result() for future in futures]
    except BaseException:
        _stop(session, futures, scratch)
        raise


def _follow(futures, log, progress):
    pending, total = list(futures), len(futures)
    while pending:
        if log.is_cancelled():
            raise Cancelled()
        still = []
        for future in pending:
            if future.status == "error":
                raise _task_error(future)
            if future.status == "cancelled":
                raise GeoEmbedError("The Dask scheduler dropped a task (a worker left or the scheduler restarted); run again.")
            if future.status != "finished":
                still.append(future)
        if progress and len(still) != len(pending):
            progress((total - len(still)) / total)
        pending = still
        if pending:
            time.sleep(POLL_S)


def _task_error(future):
    error = future.exception()
    if isinstance(error, GeoEmbedError):
        return GeoEmbedError(" ".join(str(error).split()))
    name = type(error).__name__
    text = " ".join(str(error).split())[:200]
    if name == "KilledWorker":
        return GeoEmbedError(
            "A Dask worker died while computing a piece (out of memory?); give the workers more memory or use fewer."
        )
    if isinstance(error, ImportError) and "geoembed" in text:
        return GeoEmbedError(
            f"The Dask workers cannot import GeoEmbed ({text}); install the plugin where they run or put its folder "
            "on their PYTHONPATH."
        )
    return GeoEmbedError(f"A task on the Dask cluster failed ({name}: {text}).")


def _stop(session, futures, scratch):
    """Workers stop at their next block once the cancel file exists; queued tasks are dropped. Local workers end with
    the session anyway; a remote cluster's running tasks are given a while to finish removing what they wrote."""
    scratch.cancel()
    if not session.owns_workers:
        from distributed import wait  # dask is there: a session exists

        with contextlib.suppress(Exception):  # a timeout: the folder is removed all the same
            wait(futures, timeout=STOP_GRACE_S)
    session.client.cancel(futures)


def merge_pieces(grid, specs, layout, scratch, progress=None, is_cancelled=None):
    """Write the outputs (specs) from the pieces, block by block, with the writer of a run in QGIS: same file layout,
    same metadata, and the pieces' values (nodata included) copied as they are."""
    readers = PieceReaders(layout, scratch, specs)
    try:
        # the next block of the pieces is read (decompressed) while this one is compressed into the outputs
        write_rasters(grid, specs, readers.blocks, progress, is_cancelled, layout.block, ahead=True)
    finally:
        readers.close()


class PieceReaders:
    """blocks(window): the pieces' values of an output block, one EmbeddingBlock per output (all pixels written: the
    pieces hold nodata where the output has it). Only the pieces of the current row of pieces stay open."""

    def __init__(self, layout, scratch, specs):
        self.layout = layout
        self.scratch = scratch
        self.specs = specs
        self.row = None
        self.open = {}

    def blocks(self, window):
        piece = self.layout.piece_of(window)
        if piece.window.row != self.row:
            self.close()
            self.row = piece.window.row
        col, row = window.col - piece.window.col, window.row - piece.window.row
        out = []
        for index in range(len(self.specs)):
            dataset = self._dataset(piece, index)
            values, messages = gdal_call(dataset.ReadAsArray, col, row, window.width, window.height)
            if values is None:
                raise GeoEmbedError(f"Reading a piece of the output failed: {messages[-1] if messages else 'no reason'}.")
            values = values.reshape((-1, window.height, window.width))
            out.append(EmbeddingBlock(values, np.ones((window.height, window.width), dtype=bool)))
        return out

    def _dataset(self, piece, index):
        key = (piece.index, index)
        if key not in self.open:
            path = self.scratch.piece_path(piece, index)
            dataset, messages = gdal_call(gdal.Open, path)
            if dataset is None:
                raise GeoEmbedError(f"A piece of the output is missing ({messages[-1] if messages else path}); run again.")
            self.open[key] = dataset
        return self.open[key]

    def close(self):
        self.open.clear()
