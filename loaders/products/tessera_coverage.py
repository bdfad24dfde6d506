"""Which Tessera tiles exist for an extent, a year and a version, before anything is loaded (geoembed:catalog).

Read from the dataset's manifest.parquet (a local mirror, or an http(s) root whose manifest is cached like
geoembed:load's), else, for a local folder without a manifest, from the tile files themselves. Nothing but the
manifest is downloaded.
"""

import os
from dataclasses import dataclass

from ..errors import GeoEmbedError
from ..remote.locations import is_url
from . import tessera_versions as versions
from .aef import mirror_client
from .tessera import (
    EMBEDDING,
    HALF_CELL_DEG,
    PRODUCT,
    YEAR_DIR,
    _dataset_root,
    _near,
    _scan,
    _version_namer,
    manifest_rows,
    mirror_manifest,
    tile_stem,
)


@dataclass(frozen=True)
class CoveredTile:
    name: str
    lon: float
    lat: float
    year: int
    version: str
    grid_bytes: int  # None when unknown
    scales_bytes: int

    @property
    def bounds(self):
        """The tile's 0.1-degree cell in lon/lat (the published grid: centre +- 0.05 degrees)."""
        return (self.lon - HALF_CELL_DEG, self.lat - HALF_CELL_DEG, self.lon + HALF_CELL_DEG, self.lat + HALF_CELL_DEG)


def coverage(source, wgs84, year=None, version=None, log=None, client=None, cache_dir=None, allow_outside=False):
    """(Version, [CoveredTile]) of the tiles whose cell meets the lon/lat extent; every year when year is None."""
    if wgs84 is None:
        raise GeoEmbedError("Tessera coverage needs an EXTENT; set EXTENT (e.g. the map canvas).")
    source = source or PRODUCT.public_location.rstrip("/")
    requested = versions.version(version)
    wanted = "all" if year is None else int(year)
    if is_url(source):
        client = mirror_client(client, allow_outside)
        _, manifest_url, local, marked = mirror_manifest(source, requested, client, cache_dir, log)
        rows, found, _ = _rows_or_none(local, manifest_url, wgs84, wanted, requested, log, marked)
    elif not os.path.exists(source):
        raise GeoEmbedError(f"TESSERA_SOURCE {source} does not exist; give a Tessera mirror folder or its https root.")
    else:
        manifest = _local_manifest(source, requested)
        if manifest is not None:
            marked = versions.of_path(os.path.abspath(manifest))
            rows, found, _ = _rows_or_none(manifest, manifest, wgs84, wanted, requested, log, marked)
        else:
            return _from_files(source, wgs84, wanted, requested)
    tiles = [
        CoveredTile(
            tile_stem(row),
            float(row["lon"]),
            float(row["lat"]),
            int(row["year"]),
            found.name,
            _int(row.get("grid_size")),
            _int(row.get("scales_size")),
        )
        for row in rows
    ]
    return found, tiles


def _rows_or_none(manifest, name, wgs84, year, requested, log, marked):
    """manifest_rows, with 'no tile here' an empty coverage rather than an error."""
    try:
        return manifest_rows(manifest, name, wgs84, year, requested, _Quiet(log), marked)
    except GeoEmbedError as exc:
        if "lists no tile" not in str(exc):
            raise
        return [], requested or marked or versions.DEFAULT, year


def _local_manifest(source, requested):
    if source.endswith(".parquet"):
        return source
    root = _dataset_root(source)
    candidates = [os.path.join(root, "npy", (requested or versions.DEFAULT).dataset_dir, "manifest.parquet")]
    candidates.append(os.path.join(source, "manifest.parquet"))
    return next((path for path in candidates if os.path.isfile(path)), None)


def _from_files(source, wgs84, year, requested):
    embeddings, _, _ = _scan(source)
    version_of = _version_namer(_dataset_root(source))
    found = versions.pick({version_of(path) for path in embeddings}, requested, f"TESSERA_SOURCE {os.path.basename(source)}")
    tiles = []
    for path in _near([p for p in embeddings if version_of(p) == found], wgs84):
        match = EMBEDDING.match(os.path.basename(path))
        in_year = YEAR_DIR.search(path.replace("\\", "/"))
        tile_year = int(in_year.group(1)) if in_year else None
        if year != "all" and tile_year != year:
            continue
        scales = path[: -len(".npy")] + "_scales.npy"
        lon, lat = float(match.group(1)), float(match.group(2))
        size = os.path.getsize(path)
        scales_size = os.path.getsize(scales) if os.path.exists(scales) else None
        tiles.append(CoveredTile(f"grid_{lon:.2f}_{lat:.2f}", lon, lat, tile_year, found.name, size, scales_size))
    return found, sorted(tiles, key=lambda t: (t.year or 0, t.lon, t.lat))


def _int(value):
    return None if value is None else int(value)


class _Quiet:
    """manifest_rows' log, with the year choice it would announce dropped (coverage lists every year)."""

    def __init__(self, log):
        self._log = log

    def info(self, message):
        pass

    def warning(self, message):
        if self._log is not None:
            self._log.warning(message)


def summary(found, tiles, year):
    """One log line: how many tiles, of what, and how much a load of them downloads at most."""
    known = [t.grid_bytes + (t.scales_bytes or 0) for t in tiles if t.grid_bytes is not None]
    when = f"in {year}" if year is not None else "over all years"
    years = sorted({t.year for t in tiles if t.year is not None})
    listed = f" (years {', '.join(map(str, years))})" if years and year is None else ""
    return (
        f"Tessera {found.name}: {len(tiles)} tile(s) meet the extent {when}{listed}, "
        f"{sum(known) / 1e6:,.1f} MB of .npy files (a load reads only the rows it needs over http)."
    )
