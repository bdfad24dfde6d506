"""Failures: a QgsProcessingException with one line that says what is wrong, and nothing left on disk."""

import pytest
from qgis.core import QgsProcessingException

from tests.fixtures.rasters import write_not_aef_tiff

from .helpers import EXTENT, RUNNERS, error_message

runners = pytest.mark.parametrize("runner", list(RUNNERS))
products = pytest.mark.parametrize("product", ["aef", "auto"])
MISSING = ["no-such-folder", "no-such-tile.tiff", "x0123456789abcdef-0000000000-0000000000.tiff", "aef_index.parquet"]


@pytest.fixture()
def out_dir(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


@pytest.fixture()
def not_aef_tif(tmp_path):
    """A georeferenced 3-band Float32 GeoTIFF with an AEF-like name."""
    path = write_not_aef_tiff(tmp_path / "x0123456789abcdef-0000000000-0000000000.tiff")
    return path


def fail(runner, parameters, out_dir):
    """Run, expect QgsProcessingException; check nothing was written; return the plugin's message."""
    output = out_dir / "embeddings.tif"
    with pytest.raises(QgsProcessingException) as caught:
        RUNNERS[runner]({**parameters, "OUTPUT": str(output)})
    message = error_message(caught.value)
    assert message.strip(), "empty error message"
    assert "\n" not in message.strip(), f"not a single line: {message!r}"
    assert "Traceback" not in message and "Unexpected error" not in message, message
    assert not output.exists()
    leftovers = sorted(p.name for p in out_dir.iterdir())
    assert leftovers == [], f"left behind: {leftovers}"  # no OUTPUT, no hidden .partial file, no .aux.xml
    return message


@runners
@products
@pytest.mark.parametrize("missing", MISSING)
def test_missing_source(runner, product, missing, tmp_path, out_dir):
    source = tmp_path / "nowhere" / missing
    message = fail(runner, {"PRODUCT": product, "SOURCE": str(source), "EXTENT": EXTENT}, out_dir)
    assert str(source) in message or missing in message, message


@runners
@products
@pytest.mark.parametrize("missing", MISSING)
def test_missing_source_message_says_it_does_not_exist(runner, product, missing, tmp_path, out_dir):
    """DESIGN: the one line says what was wrong. Here: the path does not exist (not 'unreadable', not 'unrecognised')."""
    source = tmp_path / "nowhere" / missing
    message = fail(runner, {"PRODUCT": product, "SOURCE": str(source), "EXTENT": EXTENT}, out_dir)
    lowered = message.lower()
    assert "does not exist" in lowered or "no such file" in lowered or "not found" in lowered, message


@runners
@products
def test_not_an_aef_geotiff(runner, product, not_aef_tif, out_dir):
    message = fail(runner, {"PRODUCT": product, "SOURCE": str(not_aef_tif)}, out_dir)
    assert not_aef_tif.name in message, message
    if product == "aef":
        assert "64" in message and "3" in message and "Float32" in message, message


@runners
@products
def test_extent_without_tiles(runner, product, index_file, out_dir):
    message = fail(runner, {"PRODUCT": product, "SOURCE": str(index_file), "EXTENT": "10,10.01,10,10.01 [EPSG:4326]"}, out_dir)
    assert "No AEF tile covers" in message and "10" in message, message


@runners
@products
def test_year_not_in_index(runner, product, index_file, out_dir):
    message = fail(runner, {"PRODUCT": product, "SOURCE": str(index_file), "EXTENT": EXTENT, "YEAR": 2031}, out_dir)
    assert "2031" in message and "2023" in message and "2024" in message, message


@runners
def test_unknown_product(runner, index_file, out_dir):
    message = fail(runner, {"PRODUCT": "nope", "SOURCE": str(index_file), "EXTENT": EXTENT}, out_dir)
    assert "nope" in message and "auto" in message and "aef" in message, message


@runners
@products
@pytest.mark.parametrize("source", ["index", "mirror-root"])
def test_index_without_extent(runner, product, source, index_file, aef_mirror, out_dir):
    path = index_file if source == "index" else aef_mirror
    message = fail(runner, {"PRODUCT": product, "SOURCE": str(path), "YEAR": 2024}, out_dir)
    assert "EXTENT" in message, message


@runners
def test_output_that_is_not_a_geotiff(runner, tile_2024_31n, out_dir):
    with pytest.raises(QgsProcessingException) as caught:
        RUNNERS[runner]({"PRODUCT": "aef", "SOURCE": str(tile_2024_31n[1]), "OUTPUT": str(out_dir / "embeddings.png")})
    message = error_message(caught.value)
    assert "\n" not in message.strip() and "OUTPUT" in message, message
    assert list(out_dir.iterdir()) == []


@runners
def test_a_failure_keeps_an_existing_output(runner, index_file, tile_2024_31n, out_dir):
    """A failed run over an existing file neither deletes nor corrupts it."""
    output = out_dir / "embeddings.tif"
    RUNNERS["cpp-run"]({"PRODUCT": "aef", "SOURCE": str(tile_2024_31n[1]), "OUTPUT": str(output)})
    before = output.read_bytes()
    with pytest.raises(QgsProcessingException):
        RUNNERS[runner]({"PRODUCT": "aef", "SOURCE": str(index_file), "EXTENT": EXTENT, "YEAR": 2031, "OUTPUT": str(output)})
    assert output.read_bytes() == before
    assert sorted(p.name for p in out_dir.iterdir()) == ["embeddings.tif"]
