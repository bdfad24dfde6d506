"""Finding a product's files in a SOURCE: one file, a folder (searched recursively) or a URL."""

import os
from pathlib import Path

from ..errors import GeoEmbedError
from ..remote.locations import basename, is_url


def find_files(source, pattern):
    """Locations under SOURCE whose file name matches the compiled regex pattern."""
    if not source:
        return []
    if is_url(source):
        return [source] if pattern.match(basename(source)) else []
    path = Path(source)
    if path.is_file():
        return [source] if pattern.match(path.name) else []
    if path.is_dir():
        return sorted(str(p) for p in path.rglob("*") if p.is_file() and pattern.match(p.name))
    return []


def require_files(source, pattern, what, product_name):
    """Like find_files, but a SOURCE that is one file is taken as it is, and finding nothing is an error."""
    if not source:
        raise GeoEmbedError(f"SOURCE is required for {product_name}; give {what}.")
    if is_url(source) or os.path.isfile(source):
        return [source]
    if not os.path.exists(source):
        raise GeoEmbedError(f"SOURCE {source} does not exist; give {what}.")
    files = find_files(source, pattern)
    if not files:
        raise GeoEmbedError(f"No {product_name} files ({what}) under {source}.")
    return files
