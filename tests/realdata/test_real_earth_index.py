"""The real Earth Index schema sample (21MNT.parquet, zero rows): loading it fails with one line saying so."""

import re

import pyarrow.parquet as pq
import pytest

from tests.e2e.helpers import leftovers, load_args, output_of
from tests.realdata.helpers import EARTH_INDEX_FILE, message_lines, verified

NAME = "21MNT.parquet"


@pytest.fixture(scope="module")
def source(realdata_dir):
    path = verified(realdata_dir, EARTH_INDEX_FILE)
    assert pq.read_metadata(path).num_rows == 0, "PROVENANCE.md: the schema sample has zero rows"
    return path


@pytest.fixture(scope="module")
def failed(qgis_process, source, tmp_path_factory):
    """(completed run, output folder, output path) of geoembed:load PRODUCT=auto on the empty file, run once."""
    folder = tmp_path_factory.mktemp("real-earth-index") / "out"
    folder.mkdir()
    output = folder / "out.tif"
    return qgis_process(*load_args(PRODUCT="auto", SOURCE=source, OUTPUT=output)), folder, output


def test_load_exits_non_zero(failed):
    completed, _, _ = failed
    assert completed.returncode != 0, output_of(completed)


def test_no_output_is_left(failed):
    _, folder, output = failed
    assert not output.exists()
    assert leftovers(folder) == []


def test_one_line_says_the_file_has_no_embeddings(failed):
    completed, _, _ = failed
    text = output_of(completed)
    assert "Traceback" not in text, text
    lines = message_lines(text)
    # qgis_process may print the error more than once; it must be one and the same line.
    assert len(lines) == 1, f"expected one error line, got {lines}"
    line = lines[0]
    assert re.search("no embeddings", line, re.IGNORECASE), line
    assert NAME in line, line
    assert "extent" not in line.lower(), f"the file is empty, the extent is not to blame: {line}"
