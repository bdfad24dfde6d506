"""Tessera dataset versions: where each lives in the published layout, and what its bands are called.

Facts (shared formats.md §2.2 and its 2026-11 addition; geotessera registry.KNOWN_DATASETS): the npy/ tree has one
folder per (version, variant) dataset, `npy/{dataset_dir}/` (v1 -> `v1`, v1.1 cambridge -> `v1.1-cam`, v2 ->
`v2-2B-L~beta1`, later variants `v2-{variant}`), each with its manifest.parquet; landmasks are per version,
`landmasks/{version_path}/` (`v1`, `v1.1`, `v2`). The versions learned separate 128-dimensional feature spaces, so
GeoEmbed never mixes them: each version's bands have their own names (v1 keeps the historical T000..T127), which makes
every band-name check refuse to compare two versions, and the version is written as GEOEMBED_PRODUCT_VERSION.
v2 is Matryoshka-ordered: its first 4 or 16 dimensions are a usable embedding on their own.
"""

import re
from dataclasses import dataclass

from ..errors import GeoEmbedError


@dataclass(frozen=True)
class Version:
    name: str  # what VERSION takes and the output records: v1, v1.1, v2
    number: str  # the manifest's `version` column: 1.0, 1.1, 2.0
    dataset_dir: str  # npy/{dataset_dir}: the default variant's folder
    version_path: str  # landmasks/{version_path}
    band_prefix: str
    matryoshka: bool = False


VERSIONS = {
    version.name: version
    for version in (
        Version("v1", "1.0", "v1", "v1", "T"),
        Version("v1.1", "1.1", "v1.1-cam", "v1.1", "Tv11_"),
        Version("v2", "2.0", "v2-2B-L~beta1", "v2", "Tv2_", matryoshka=True),
    )
}
DEFAULT = VERSIONS["v1"]
PREFIX_DIMENSIONS = (4, 16)  # the prefix depths v2 publishes (its Zarr store's embeddings_d4 / embeddings_d16)
DIMS = 128
_DATASET_DIR = re.compile(r"^v(\d+)(?:\.(\d+))?(?:-(.+))?$")


def version(name):
    """The Version for a VERSION value (v1, v1.1, v2; also 1, 1.0, 2.0 ...); None for an empty one."""
    if not name:
        return None
    text = str(name).strip().lower()
    text = text[1:] if text.startswith("v") else text
    major, _, minor = text.partition(".")
    key = f"v{major}" if minor in ("", "0") else f"v{major}.{minor}"
    if key not in VERSIONS:
        raise GeoEmbedError(f"Unknown Tessera VERSION '{name}'; use one of {', '.join(VERSIONS)}.")
    return VERSIONS[key]


def of_dataset_dir(dirname):
    """The Version of an npy/ dataset folder name (v1, v1.1-cam, v2-2B-L~beta2 ...), or None for another name."""
    match = _DATASET_DIR.match(dirname or "")
    if not match:
        return None
    key = f"v{match.group(1)}" if match.group(2) in (None, "0") else f"v{match.group(1)}.{match.group(2)}"
    return VERSIONS.get(key)


def of_path(path):
    """The Version a tile path names through its npy/{dataset_dir}/ or landmasks/{version_path}/ folder, else None."""
    parts = path.replace("\\", "/").split("/")
    for marker in ("npy", "landmasks"):
        for index, part in enumerate(parts[:-1]):
            if part == marker:
                found = of_dataset_dir(parts[index + 1])
                if found is not None:
                    return found
    return None


def band_names(found, dims=DIMS):
    return tuple(f"{found.band_prefix}{i:03d}" for i in range(dims))


def check_dimensions(found, dimensions):
    """The number of dimensions to read: all of them, or a prefix of a Matryoshka-ordered version."""
    if not dimensions or int(dimensions) == DIMS:
        return DIMS
    dimensions = int(dimensions)
    if not found.matryoshka:
        raise GeoEmbedError(
            f"DIMENSIONS={dimensions} needs Tessera v2 (Matryoshka-ordered); {found.name} dimensions are not ordered by "
            "importance, so a prefix of them is not an embedding: leave DIMENSIONS empty or set VERSION=v2."
        )
    if dimensions not in PREFIX_DIMENSIONS:
        allowed = ", ".join(str(d) for d in (*PREFIX_DIMENSIONS, DIMS))
        raise GeoEmbedError(f"DIMENSIONS={dimensions} is not a Tessera v2 prefix; use one of {allowed}.")
    return dimensions


def pick(found, requested, what):
    """The one version of a run: `found` are the versions SOURCE holds (a set), `requested` the VERSION (or None)."""
    found = {v for v in found if v is not None}
    if requested is not None:
        if found and requested not in found:
            held = ", ".join(sorted(v.name for v in found))
            raise GeoEmbedError(f"VERSION={requested.name} but {what} holds Tessera {held} only; set VERSION to {held}.")
        return requested
    if len(found) > 1:
        held = " and ".join(sorted(v.name for v in found))
        raise GeoEmbedError(
            f"{what} holds Tessera tiles of {held}, separate feature spaces that are never mixed; set VERSION to one of them."
        )
    return next(iter(found)) if found else DEFAULT
