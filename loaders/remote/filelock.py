"""A cross-process (and cross-thread) lock on a file, for cache entries that several runs may fetch at once.

POSIX: fcntl.flock on a lock file (released by the kernel when its holder dies, so never stale; each
FileLock opens its own descriptor, so two threads of one process exclude each other too). The holder
deletes the file before unlocking it, and a run that locked a file which is no longer the one at the path
tries again, so no lock files are left behind. Elsewhere: a
lock file created with O_EXCL, kept fresh by a heartbeat thread while held, and broken when its
modification time is older than `stale` seconds (its holder died).
"""

import contextlib
import os
import threading
import time

from ..errors import GeoEmbedError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

WAIT_S = 30 * 60  # how long to wait for another run's download before giving up
STALE_S = 120  # O_EXCL lock files not refreshed for this long belong to a dead process
POLL_S = 0.05


class FileLock:
    """`with FileLock(path): ...` waits (polling) until no other holder has the lock, up to `timeout` seconds."""

    def __init__(self, path, timeout=WAIT_S, stale=STALE_S, use_flock=None):
        self.path = str(path)
        self.timeout, self.stale = timeout, stale
        self.use_flock = fcntl is not None if use_flock is None else use_flock
        self._fd = None
        self._stop = None

    def __enter__(self):
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        deadline = time.monotonic() + self.timeout
        acquire = self._try_flock if self.use_flock else self._try_exclusive
        while not acquire():
            if time.monotonic() > deadline:
                raise GeoEmbedError(
                    f"Another GeoEmbed run has held {self.path} for over {self.timeout:g} s; "
                    "wait for it to finish, or delete the lock file if no run is active."
                )
            time.sleep(POLL_S)
        return self

    def __exit__(self, *exc):
        if self.use_flock:
            with contextlib.suppress(OSError):
                os.remove(self.path)  # while still locked: see _try_flock
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
        else:
            self._stop.set()
            os.close(self._fd)
            with contextlib.suppress(OSError):
                os.remove(self.path)
        self._fd = None
        return False

    # --- POSIX ---------------------------------------------------------------------------------

    def _try_flock(self):
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            current = os.stat(self.path).st_ino
        except OSError:  # held by another run, or its file was deleted as it was released
            os.close(fd)
            return False
        if current != os.fstat(fd).st_ino:  # locked a released file that another run has replaced
            os.close(fd)
            return False
        self._fd = fd
        return True

    # --- fallback ------------------------------------------------------------------------------

    def _try_exclusive(self):
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            self._break_if_stale()
            return False
        os.write(fd, str(os.getpid()).encode("ascii"))
        self._fd = fd
        self._stop = threading.Event()
        threading.Thread(target=self._heartbeat, args=(self._stop,), daemon=True).start()
        return True

    def _break_if_stale(self):
        try:
            age = time.time() - os.stat(self.path).st_mtime
        except OSError:
            return  # released meanwhile
        if age > self.stale:
            with contextlib.suppress(OSError):
                os.remove(self.path)

    def _heartbeat(self, stop):
        while not stop.wait(self.stale / 4):
            try:
                os.utime(self.path)
            except OSError:
                return
