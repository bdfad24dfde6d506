"""Bad input: a non-zero exit, one line naming the problem, no traceback, no output or partial file left."""

import socket

import pytest

from tests.e2e.helpers import leftovers, load_args, output_of
from tests.fixtures.rasters import write_not_aef_tiff

EXTENT = "5.975,6.02,44.99,45.02 [EPSG:4326]"


def _closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _not_aef_tiff(folder):
    return write_not_aef_tiff(folder / "three_bands.tif")


# id: (parameters built from (mirror root, tmp folder), words the error line must contain)
CASES = {
    "missing-path": (lambda root, tmp: {"PRODUCT": "aef", "SOURCE": tmp / "no" / "such" / "mirror"}, ["does not exist"]),
    # PRODUCT left at its default (auto), as most users will: the reason must not be lost.
    "missing-path-auto": (lambda root, tmp: {"SOURCE": tmp / "no" / "such" / "mirror"}, ["does not exist"]),
    "not-the-product": (lambda root, tmp: {"PRODUCT": "aef", "SOURCE": _not_aef_tiff(tmp)}, ["64 signed 8-bit", "3"]),
    "no-tile-covers": (
        lambda root, tmp: {"SOURCE": root, "EXTENT": "10,10.01,10,10.01 [EPSG:4326]"},
        ["No AEF tile covers"],
    ),
    "year-2031": (lambda root, tmp: {"SOURCE": root, "YEAR": 2031, "EXTENT": EXTENT}, ["2031", "2023"]),
    "unreachable-url": (
        lambda root, tmp: {"PRODUCT": "aef", "SOURCE": f"http://127.0.0.1:{_closed_port()}/", "EXTENT": EXTENT},
        ["Cannot reach"],
    ),
    "unreachable-url-auto": (
        lambda root, tmp: {"SOURCE": f"http://127.0.0.1:{_closed_port()}/", "EXTENT": EXTENT},
        ["Cannot reach"],
    ),
    "unknown-product": (
        lambda root, tmp: {"PRODUCT": "nope", "SOURCE": root, "EXTENT": EXTENT},
        ["valid PRODUCT values", "nope"],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_fails_cleanly(qgis_process, aef_mirror, tmp_path, case):
    build, words = CASES[case]
    params = build(aef_mirror, tmp_path)
    out = tmp_path / "out"
    output, quicklook = out / "embeddings.tif", out / "quicklook.png"
    completed = qgis_process(*load_args(**params, OUTPUT=output, QUICKLOOK=quicklook))
    text = output_of(completed)
    assert completed.returncode != 0, text
    lines = [line for line in text.splitlines() if all(word in line for word in words)]
    assert lines, f"no line with {words} in:\n{text}"
    assert "Traceback" not in text, text
    assert not output.exists()
    assert not quicklook.exists()
    assert leftovers(out) == []
    assert leftovers(tmp_path) == []
