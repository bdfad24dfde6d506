"""Tessera .npy arrays over http(s), read by rows with HTTP Range requests.

A tile's .npy is a small header then C-ordered int8 (H, W, 128) values, so the rows an area needs are one contiguous
byte range: header length + row * W * 128 onwards. The header (the first bytes) is read once when the tile opens and
checked like a local one (loaders/limits.py: dtype, shape, no pickles); the server's total size (Content-Range) must
equal the manifest's grid_size / scales_size and what the header claims, so a truncated or replaced file is refused
in one line before any value is read. Retries, timeouts and same-host redirects are the HttpClient's.
"""

import io
import math

import numpy as np

from ..errors import GeoEmbedError
from ..limits import check_npy_header, size_text
from ..remote.locations import basename

HEAD_BYTES = 256  # a numpy header is padded to 64-byte multiples; Tessera's fit in 128


class RemoteNpy:
    """The parts of numpy's array interface TesseraTile uses (shape, dtype, ndim, [rows, cols, ...]) over one URL."""

    def __init__(self, url, client, expected_size=None, ndim=None, dtypes=None):
        self.url = url
        self._client = client
        name = basename(url)
        head, total = client.read_range(url, 0, HEAD_BYTES)
        if total is None:
            raise GeoEmbedError(f"The server of {url} does not say the size of {name}; use a server that supports Range.")
        shape, fortran, dtype, self.offset = _parse_header(head, name, client, url)
        if expected_size and int(expected_size) != total:
            raise GeoEmbedError(
                f"{name} is {size_text(total)} ({total} bytes) on the server but its manifest says {expected_size} bytes; "
                "the mirror is inconsistent (a tile replaced or cut short): check SOURCE or try again later."
            )
        check_npy_header(name, shape, fortran, dtype, total - self.offset, ndim, dtypes)
        self.shape, self.dtype, self.ndim = tuple(int(s) for s in shape), dtype, len(shape)
        self._row_bytes = math.prod(self.shape[1:]) * dtype.itemsize

    def __getitem__(self, key):
        rows, rest = (key[0], key[1:]) if isinstance(key, tuple) else (key, ())
        first, stop, _ = rows.indices(self.shape[0])
        count = max(stop - first, 0)
        if count == 0:
            return np.empty((0, *self.shape[1:]), dtype=self.dtype)[(slice(None), *rest)]
        data, _ = self._client.read_range(self.url, self.offset + first * self._row_bytes, count * self._row_bytes)
        block = np.frombuffer(data, dtype=self.dtype).reshape((count, *self.shape[1:]))
        return block[(slice(None), *rest)]

    def close(self):
        """Release the client's pooled connections (a later request opens new ones)."""
        self._client.session.close()


def _parse_header(head, name, client, url):
    from numpy.lib import format as npy_format

    def parse(data):
        handle = io.BytesIO(data)
        version = npy_format.read_magic(handle)
        reader = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
        shape, fortran, dtype = reader(handle)
        return tuple(shape), fortran, np.dtype(dtype), handle.tell()

    try:
        try:
            return parse(head)
        except ValueError:
            # A longer header (not Tessera's, but legal): its length is in bytes 8-9 (v1) or 8-11 (v2+).
            width = 2 if head[6:7] == b"\x01" else 4
            length = 8 + width + int.from_bytes(head[8 : 8 + width], "little")
            if length > 1 << 20:
                raise
            more, _ = client.read_range(url, 0, length)
            return parse(more)
    except (ValueError, SyntaxError, TypeError) as exc:
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise GeoEmbedError(f"{name} is not a readable .npy file ({reason}); check SOURCE.") from exc
