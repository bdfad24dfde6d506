"""Where the tasks run: a local cluster of worker processes or an existing Dask scheduler (the CLUSTER parameter)."""

import logging
import multiprocessing
import os
import re
import site
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass

from ...loaders.errors import GeoEmbedError

LOCAL = "local"
CONNECT_TIMEOUT_S = 5  # a wrong address is said within seconds, not after dask's default 30 s
WORKER_CHECK_TIMEOUT_S = 60  # importing dask on a busy machine takes a few seconds
INSTALL = (
    "CLUSTER needs dask.distributed: on Debian/Ubuntu 'sudo apt install python3-distributed', elsewhere "
    "'python3 -m pip install \"dask[distributed]\"' into QGIS's Python; or leave CLUSTER empty to run in QGIS."
)
_HOST_PORT = re.compile(r"^[\w.\-\[\]:]+:\d+$")


@dataclass(frozen=True)
class ClusterSettings:
    """address: 'local' or a scheduler address (tcp://host:port); workers: local worker processes (0: one per core)."""

    address: str
    workers: int = 0


def parse(text, workers=0):
    """ClusterSettings for a CLUSTER value, None when empty (run in QGIS); a missing dask is said here, before any
    work."""
    text = (text or "").strip()
    if not text:
        return None
    require_distributed()
    if text.lower() == LOCAL:
        return ClusterSettings(LOCAL, max(0, int(workers or 0)))
    if "://" not in text:
        if not _HOST_PORT.match(text):
            raise GeoEmbedError(f"CLUSTER '{text[:80]}' is neither 'local' nor a Dask scheduler address such as tcp://host:8786.")
        text = "tcp://" + text
    return ClusterSettings(text, 0)


def require_distributed():
    try:
        import distributed
    except ImportError:
        raise GeoEmbedError(INSTALL) from None
    return distributed


class Session:
    """A connected dask.distributed Client; owns_workers when the workers are local processes started for this run
    (closing the session ends them, even in the middle of a task)."""

    def __init__(self, client, cluster=None):
        self.client = client
        self.cluster = cluster

    @property
    def owns_workers(self):
        return self.cluster is not None

    def worker_count(self):
        """Tasks that can run at once (threads of all workers)."""
        workers = self.client.scheduler_info().get("workers", {})
        return max(1, sum(int(info.get("nthreads", 1)) for info in workers.values()))

    def worker_peak_rss(self):
        """{worker address: peak resident memory in bytes} since each worker process started."""
        return self.client.run(peak_rss)

    def close(self):
        try:
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()


@contextmanager
def connect(settings, log=None):
    """A Session on the cluster the settings name; closed (local workers ended) on leaving."""
    distributed = require_distributed()
    if settings.address == LOCAL:
        session = _start_local(distributed, settings.workers)
    else:
        session = _connect(distributed, settings.address)
    try:
        # Workers import GeoEmbed by name: tell them where this copy lives (harmless where the folder does not exist).
        session.client.run(site.addsitedir, plugins_folder())
        if log is not None:
            log.info(f"Dask cluster {settings.address}: {session.worker_count()} worker thread(s).")
        yield session
    finally:
        session.close()


def _start_local(distributed, workers):
    count = workers or len(usable_cores())
    executable = _use_python_for_workers()
    with _worker_environment(LD_PRELOAD=_global_cblas()):  # read once, as the worker processes start
        _check_worker_python(executable)
        cluster = _local_cluster(distributed, count)
    try:
        client = distributed.Client(cluster, timeout=f"{CONNECT_TIMEOUT_S * 6}s")
    except BaseException:
        cluster.close()
        raise
    session = Session(client, cluster)
    try:
        _pin_workers(client)
    except Exception:  # noqa: BLE001 - pinning only spares the workers each other's threads: run unpinned
        logging.getLogger(__name__).debug("local Dask workers left unpinned", exc_info=True)
    except BaseException:
        session.close()
        raise
    return session


def usable_cores():
    """The cores this process may run on (a container or `taskset` may allow fewer than the machine has)."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def core_shares(cores, workers):
    """The cores of each of `workers` local workers: consecutive equal shares of `cores`, or, with more workers than
    cores, one core each in turn."""
    if workers <= len(cores):
        return [cores[number * len(cores) // workers : (number + 1) * len(cores) // workers] for number in range(workers)]
    return [[cores[number % len(cores)]] for number in range(workers)]


def _pin_workers(client):
    """Each local worker on its own share of the cores. A worker keeps more than one thread busy (the next block is
    read while this one is computed, GDAL compresses in threads): unpinned, two workers on two cores push each other's
    threads around, and a worker's speed would depend on what the others do. Where threads cannot be pinned (not
    Linux) the workers run unpinned."""
    if not hasattr(os, "sched_setaffinity"):
        return
    addresses = sorted(client.scheduler_info().get("workers", {}))
    for address, cores in zip(addresses, core_shares(usable_cores(), len(addresses))):
        client.run(pin_threads, cores, workers=[address])


def pin_threads(cores):
    """Run on a worker: every thread of the process, and so the threads they start later, on `cores` only."""
    for thread in os.listdir("/proc/self/task"):  # Linux: every thread of this process
        try:
            os.sched_setaffinity(int(thread), cores)
        except OSError:  # the thread ended meanwhile
            continue
    return sorted(os.sched_getaffinity(0))


def _local_cluster(distributed, count):
    try:
        return distributed.LocalCluster(
            n_workers=count,
            threads_per_worker=1,  # one task per process: GDAL and numpy release the GIL, but pieces are big
            processes=True,
            dashboard_address=":0",  # any free port: two runs at once must not clash on 8787
            silence_logs=logging.ERROR,
        )
    except Exception as exc:  # noqa: BLE001 - any failure to start processes is said in one line
        raise GeoEmbedError(f"Cannot start {count} local Dask worker(s) ({_reason(exc)}); use CLUSTER empty.") from None


@contextmanager
def _worker_environment(**values):
    """Environment variables set (when not None) while worker processes start, then put back."""
    saved = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            if value is not None:
                os.environ[name] = value
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _global_cblas():
    """The library serving cblas_sgemm in this process's global symbol scope, or None (plain Python has none).

    QGIS links GSL, whose reference CBLAS then also serves numpy's matrix products in QGIS instead of the BLAS numpy
    was built with: sums in another order, last bits that differ. Local workers preload the same library, so that
    they compute exactly what a run in QGIS computes."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    class DlInfo(ctypes.Structure):
        _fields_ = [
            ("fname", ctypes.c_char_p),
            ("fbase", ctypes.c_void_p),
            ("sname", ctypes.c_char_p),
            ("saddr", ctypes.c_void_p),
        ]

    try:
        scope = ctypes.CDLL(None)
        address = ctypes.cast(scope.cblas_sgemm, ctypes.c_void_p)
        info = DlInfo()
        if not scope.dladdr(address, ctypes.byref(info)) or not info.fname:
            return None
    except (AttributeError, OSError):  # no such symbol in the global scope: numpy uses its own BLAS
        return None
    path = os.fsdecode(info.fname)
    return path if os.path.isfile(path) and "python" not in os.path.basename(path) else None


def _connect(distributed, address):
    try:
        return Session(distributed.Client(address, timeout=f"{CONNECT_TIMEOUT_S}s"))
    except Exception as exc:  # noqa: BLE001 - OSError, TimeoutError, ValueError (bad address)...: all one line
        raise GeoEmbedError(
            f"Cannot reach the Dask scheduler at {address} ({_reason(exc)}); check CLUSTER (start one with "
            "'dask scheduler'), or set CLUSTER=local or leave it empty."
        ) from None


def _reason(exc):
    text = " ".join(str(exc).split())[:160]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def plugins_folder():
    """The folder holding the geoembed package, as Python found it (a link is kept: build/plugins/geoembed)."""
    package = sys.modules[__name__.split(".")[0]]
    return os.path.dirname(os.path.abspath(list(package.__path__)[0]))


def _use_python_for_workers():
    """Worker processes are started with a Python interpreter; inside QGIS, sys.executable may be QGIS itself or
    whatever `python3` comes first on PATH (another Python, which cannot load this one's modules): use this Python's
    own interpreter, found under its installation prefix."""
    executable = sys.executable or ""
    prefixes = {os.path.realpath(p) for p in (sys.exec_prefix, sys.base_exec_prefix)}
    named_python = os.path.basename(executable).lower().startswith("python")
    if named_python and any(os.path.realpath(executable).startswith(p + os.sep) for p in prefixes):
        return executable
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    for prefix in (sys.exec_prefix, sys.base_exec_prefix):
        for candidate in (
            os.path.join(prefix, "bin", f"python{version}"),
            os.path.join(prefix, "bin", "python3"),
            os.path.join(prefix, "python.exe"),  # OSGeo4W
        ):
            if os.path.isfile(candidate):
                multiprocessing.get_context("spawn").set_executable(candidate)
                return candidate
    return executable


def _check_worker_python(executable):
    """A worker whose interpreter cannot import dask or GeoEmbed would die as it starts, and dask would wait for it
    for ever: try the interpreter first, with the module path the workers get (spawn hands them sys.path)."""
    package = __name__.split(".")[0]
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    try:
        done = subprocess.run(
            [executable, "-c", f"import distributed, {package}.analysis.distributed.tasks"],
            env=environment,
            capture_output=True,
            text=True,
            timeout=WORKER_CHECK_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GeoEmbedError(f"Cannot start Dask workers with {executable} ({_reason(exc)}); leave CLUSTER empty.") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise GeoEmbedError(
            f"Dask workers cannot start: {executable} fails to import dask.distributed and GeoEmbed ({last[:160]}); "
            "leave CLUSTER empty."
        )


def peak_rss():
    """Peak resident memory of this process in bytes (run on each worker)."""
    import resource  # POSIX only

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024
