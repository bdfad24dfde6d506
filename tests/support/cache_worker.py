"""One process of a concurrency test: wait for the go signal, fetch a URL through the cache, print what it got.

    python -m tests.support.cache_worker URL CACHE_DIR READY_FILE GO_FILE

Prints one JSON line: the cached path, the SHA-256 of its content and the log lines.
"""

import hashlib
import json
import os
import sys
import time

from geoembed.loaders.products.geoparquet import is_parquet
from geoembed.loaders.remote.cache import cached_copy
from geoembed.loaders.remote.http_client import HttpClient


class _Log:
    def __init__(self):
        self.lines = []

    def info(self, message):
        self.lines.append(message)

    warning = info


def main(url, cache_dir, ready, go):
    open(ready, "w").close()
    deadline = time.monotonic() + 60
    while not os.path.exists(go):
        if time.monotonic() > deadline:
            raise SystemExit("no go signal")
        time.sleep(0.005)
    log = _Log()
    start = time.monotonic()
    path = cached_copy(url, is_parquet, client=HttpClient(retries=1, backoff=0.01), cache_dir=cache_dir, log=log)
    with open(path, "rb") as handle:
        digest = hashlib.sha256(handle.read()).hexdigest()
    print(json.dumps({"path": str(path), "sha256": digest, "log": log.lines, "seconds": time.monotonic() - start}))


if __name__ == "__main__":
    main(*sys.argv[1:5])
