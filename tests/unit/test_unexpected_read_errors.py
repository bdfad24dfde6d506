"""An unexpected failure while recognising or reading a product is one line naming the file and what failed.

Real files fail in ways no fixture foresaw (a library raising where it used to return None, a damaged footer, an odd
metadata value): the user must get one line that names their file, never a traceback or "please report it".
"""

import pytest

from geoembed.loaders import products
from geoembed.loaders.errors import GeoEmbedError
from geoembed.loaders.load import LoadRequest, run
from tests.unit.helpers import QuietLog, assert_one_line


class DebugLog(QuietLog):
    def __init__(self):
        super().__init__()
        self.debugs = []

    def debug(self, message):
        self.debugs.append(message)


@pytest.fixture()
def a_file(tmp_path):
    path = tmp_path / "chips_v001.gpq"
    path.write_bytes(b"not really parquet")
    return path


def test_failure_while_reading_names_the_file(monkeypatch, tmp_path, a_file):
    def broken_plan(request, log, client=None):
        raise RuntimeError("Something deep inside\nwent wrong on line 2")

    monkeypatch.setattr(products.MODULES["clay"], "plan", broken_plan)
    log = DebugLog()
    with pytest.raises(GeoEmbedError) as info:
        run(LoadRequest(output=str(tmp_path / "out.tif"), product="clay", source=str(a_file)), log=log)
    message = assert_one_line(info.value)
    assert a_file.name in message and "RuntimeError" in message and "went wrong on line 2" in message, message
    assert message.startswith(f"Cannot read {a_file.name} as Clay") and "Traceback" not in message
    assert any("Traceback" in text and "broken_plan" in text for text in log.debugs), "no traceback for a bug report"
    assert not (tmp_path / "out.tif").exists()


def test_failure_while_recognising_names_the_file(monkeypatch, tmp_path, a_file):
    def broken_recognise(source):
        raise ValueError("unexpected metadata value")

    monkeypatch.setattr(products.MODULES["aef"], "recognise_source", broken_recognise)
    with pytest.raises(GeoEmbedError) as info:
        run(LoadRequest(output=str(tmp_path / "out.tif"), product="auto", source=str(a_file)), log=QuietLog())
    message = assert_one_line(info.value)
    assert message.startswith("Cannot tell which product chips_v001.gpq is: ValueError: unexpected metadata value"), message


def test_errors_worded_for_users_pass_through_unchanged(monkeypatch, tmp_path, a_file):
    def refusing_plan(request, log, client=None):
        raise GeoEmbedError("chips_v001.gpq holds no embeddings (0 rows).")

    monkeypatch.setattr(products.MODULES["clay"], "plan", refusing_plan)
    with pytest.raises(GeoEmbedError) as info:
        run(LoadRequest(output=str(tmp_path / "out.tif"), product="clay", source=str(a_file)), log=QuietLog())
    assert str(info.value) == "chips_v001.gpq holds no embeddings (0 rows)."
