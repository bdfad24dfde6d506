"""Reading the next block in a background thread while the current one is being processed.

GDAL reads and numpy de-quantisation release the GIL, so on two cores reading and computing overlap.
Only the worker thread touches the source at any time: a read out of the expected order first waits
for the read in flight, then stops prefetching.
"""

import contextlib
from concurrent.futures import ThreadPoolExecutor

from ..model import EmbeddingRaster


class Prefetched(EmbeddingRaster):
    """Wraps an EmbeddingRaster that will be read in the order of `windows`, by its `method` (read or read_linear)."""

    def __init__(self, raster, windows, method="read"):
        self.raster = raster
        self.grid = raster.grid
        self.band_names = raster.band_names
        self.provenance = raster.provenance
        self._method = method
        self._windows = iter(windows)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="geoembed-prefetch")
        self._pending = None
        self._schedule()

    def _schedule(self):
        window = next(self._windows, None)
        reader = getattr(self.raster, self._method)
        self._pending = None if window is None else ((self._method, window), self._pool.submit(reader, window))

    def _take(self, method, window):
        if self._pending is not None:
            expected, future = self._pending
            self._pending = None
            result = future.result()  # always wait: the source is never read by two threads at once
            if expected == (method, window):
                self._schedule()
                return result
        return getattr(self.raster, method)(window)

    def read(self, window):
        return self._take("read", window)

    def read_linear(self, window):
        return self._take("read_linear", window)

    def close(self):
        if self._pending is not None:
            self._pending[1].cancel()
            with contextlib.suppress(Exception):  # a failed read nobody asked for
                self._pending[1].result()
            self._pending = None
        self._pool.shutdown(wait=True)
        self.raster.close()
