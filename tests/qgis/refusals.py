"""The checks every row of a bad- or hostile-input table gets: the algorithm refuses with one line that names the
problem, leaves nothing in its output folder, takes less than 1.5 GB of memory and ends within 10 s.

Memory is the rise of the process's resident size over the row, sampled every 5 ms (/proc/self/statm), so it covers
GDAL's and numpy's allocations alike, not only Python's. The rise, not the size: the test process already holds what
earlier tests left (GDAL's block cache, QGIS's layers): hundreds of MiB to GiBs, depending on which tests ran before.
(Resetting the kernel's high-water mark through /proc/self/clear_refs would be exact, but corrupted the QGIS process
on the VM this was written on.)
"""

import os
import threading
import time
from pathlib import Path

import pytest
from qgis.core import QgsProcessingException

from .helpers import error_message

MAX_SECONDS = 10.0
MAX_RISE_MIB = 1536


def run(name, parameters):
    import processing

    return processing.run(f"geoembed:{name}", parameters)


class PeakMemory:
    """The largest rise of this process's resident size while the block runs, in MiB (sampled)."""

    PAGE_MIB = os.sysconf("SC_PAGE_SIZE") / 2**20

    def __enter__(self):
        self.start_mib = self._rss_mib()
        self.peak_mib, self._done = self.start_mib, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join()
        self.rise_mib = self.peak_mib - self.start_mib

    def _sample(self):
        while not self._done.wait(0.005):
            self.peak_mib = max(self.peak_mib, self._rss_mib())

    def _rss_mib(self):
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * self.PAGE_MIB


def assert_refused(algorithm, parameters, words, out, case=""):
    """Run geoembed:<algorithm>; it must raise one line holding every word (case-insensitive), write nothing into
    the folder `out`, take less than MAX_RISE_MIB and end within MAX_SECONDS. Returns the message."""
    parameters = {key: str(value) if isinstance(value, Path) else value for key, value in parameters.items()}
    started = time.monotonic()
    with PeakMemory() as memory, pytest.raises(QgsProcessingException) as caught:
        run(algorithm, parameters)
    seconds = time.monotonic() - started
    message = error_message(caught.value).strip()
    assert "\n" not in message and "Traceback" not in message, message
    assert all(word.lower() in message.lower() for word in words), f"{case}: {words} not in: {message}"
    assert list(Path(out).iterdir()) == [], f"{case} left {[p.name for p in Path(out).iterdir()]}"
    assert seconds < MAX_SECONDS, f"{case}: refused after {seconds:.1f} s"
    assert memory.rise_mib < MAX_RISE_MIB, f"{case}: took {memory.rise_mib:.0f} MiB (from {memory.start_mib:.0f} MiB)"
    return message
