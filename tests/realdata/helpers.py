"""Helpers of the real-data tier: where the real files are, that they are the measured ones, and what QGIS reads back.

Expectations never come from geoembed: the facts are those measured in ../shared/realdata/PROVENANCE.md,
the files' own bytes (GDAL, pyarrow) and pyproj.
"""

import hashlib
import os
import re
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
REALDATA_ENV = "GEOEMBED_REALDATA"

AEF_TILE = "aef/v1/annual/2024/13N/xjejfvrbm1fbu1ecw-0000000000-0000008192.tiff"
CLAY_FILE = "clay/01WCP_20170701_20210603_v001.gpq"
EARTH_INDEX_FILE = "earth-index/21MNT.parquet"

# The bytes PROVENANCE.md's facts (and so these tests) were measured on.
MEASURED_SHA256 = {
    AEF_TILE: "3fbab6da52337a76c1755f27535e1a873c793c8734ccb4dc16f2d74d7200b214",
    CLAY_FILE: "69cf234d283889cc4d6647d810b3d3f5c4d1de203ffab42442f12f6934ff0392",
    EARTH_INDEX_FILE: "790ae8aaf09cac8a66abf60f99d6aba0530153fef1066dc82093036154bd5cc0",
}

# A row of PROVENANCE.md's table: | `path` | product | bytes | `sha256` | ...
_PROVENANCE_ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|[^|]*\|[^|]*\|\s*`([0-9a-f]{64})`\s*\|", re.MULTILINE)
# Lines that are warnings of Python or GDAL, not the algorithm's own message.
_WARNING_LINE = re.compile(r"^(\S+:\d+: \w*Warning:|Warning \d+:|Logged warning:)")
_PYTHON_WARNING_LINE = re.compile(r"^\S+:\d+: \w*Warning:")  # followed by the source line, indented


def realdata_folder():
    """GEOEMBED_REALDATA, or ../shared/realdata beside the repository."""
    override = os.environ.get(REALDATA_ENV)
    return Path(override) if override else REPO.parent / "shared" / "realdata"


def missing_reason(folder):
    return f"real product files not found at {folder}; they live beside the repository in ../shared/realdata"


def provenance_sha256(folder):
    """{relative path: sha256} as listed in the folder's PROVENANCE.md."""
    document = folder / "PROVENANCE.md"
    if not document.is_file():
        pytest.fail(f"{document} is missing: the real files cannot be checked against their measured facts")
    return dict(_PROVENANCE_ROW.findall(document.read_text(encoding="utf-8")))


def verified(folder, relative):
    """The path of a real file, after checking its sha256 against PROVENANCE.md (a mismatch fails the test)."""
    path = folder / relative
    if not path.is_file():
        pytest.fail(f"{path} is missing from {folder}; PROVENANCE.md describes it")
    listed = provenance_sha256(folder).get(relative)
    if listed != MEASURED_SHA256[relative]:
        pytest.fail(
            f"PROVENANCE.md lists sha256 {listed} for {relative}, but this tier was written for "
            f"{MEASURED_SHA256[relative]}: update the tests' facts along with the file"
        )
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    if actual != listed:
        pytest.fail(f"{path} has sha256 {actual}, PROVENANCE.md lists {listed}: it is not the measured file; restore it")
    return path


# --- what QGIS reads back ----------------------------------------------------------------------


def open_layer(path):
    """The output as a QgsRasterLayer (keep the layer alive while using its dataProvider())."""
    from qgis.core import QgsRasterLayer

    layer = QgsRasterLayer(str(path), Path(path).name, "gdal")
    assert layer.isValid(), f"QGIS cannot open {path}"
    return layer


def pixel_size(provider):
    """(x, y) size of a pixel, from the provider's extent and size."""
    extent = provider.extent()
    return extent.width() / provider.xSize(), extent.height() / provider.ySize()


def pixel_centre(provider, row, col):
    """Map position of the centre of pixel (row, col); row 0 is the northern edge in QGIS's blocks."""
    extent = provider.extent()
    dx, dy = pixel_size(provider)
    return extent.xMinimum() + (col + 0.5) * dx, extent.yMaximum() - (row + 0.5) * dy


def band_values(provider, band):
    """(rows, cols) float64 of one band read with block(); NaN where QGIS says nodata."""
    block = provider.block(band, provider.extent(), provider.xSize(), provider.ySize())
    assert block.isValid(), f"QGIS could not read band {band}"
    return np.array(
        [[np.nan if block.isNoData(r, c) else block.value(r, c) for c in range(block.width())] for r in range(block.height())]
    )


def all_values(provider):
    """(bands, rows, cols) float64 of every band; NaN at nodata."""
    return np.stack([band_values(provider, band) for band in range(1, provider.bandCount() + 1)])


def band_description(provider, band):
    """The band's description as QGIS shows it ("Band 01: A00" -> "A00"; "" when it has none)."""
    name = provider.generateBandName(band)
    return name.split(": ", 1)[1] if ": " in name else ""


def message_lines(text):
    """The distinct non-empty lines of a run's output that are not Python/GDAL warnings (a Python warning is followed
    by the indented source line it points at, e.g. QGIS 3.44's own DeprecationWarnings under Python 3.14)."""
    kept, after_python_warning = set(), False
    for line in text.splitlines():
        if after_python_warning and line[:1].isspace():
            after_python_warning = False
            continue
        after_python_warning = bool(_PYTHON_WARNING_LINE.match(line.strip()))
        if line.strip() and not _WARNING_LINE.match(line.strip()):
            kept.add(line.strip())
    return sorted(kept)
