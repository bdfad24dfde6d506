"""The query file (analysis/query_file.py): a saved query gives back exactly its vectors, and the same heatmap; every
file that is not such a query (a pickle, a zip, huge, NaN, the wrong band count ...) is refused in one line.
Also the score with counter-examples, against brute force."""

import json
import pickle

import numpy as np
import pytest

from geoembed.analysis import query_file
from geoembed.analysis.query_file import Query
from geoembed.analysis.similarity import SimilarityRaster, query_vector
from geoembed.loaders.errors import GeoEmbedError
from tests.unit.helpers import leftovers
from tests.unit.test_analysis_memraster import random_raster
from tests.unit.test_analysis_similarity import brute_cosine, read_all

BANDS = 16
NAMES = tuple(f"A{i:02d}" for i in range(BANDS))


def a_query(seed=0, examples=3, counter=2):
    rng = np.random.default_rng(seed)
    return Query(
        NAMES,
        rng.normal(size=(examples, BANDS)).astype(np.float32),  # as pixels are read: float32
        rng.normal(size=(counter, BANDS)).astype(np.float32),
        rng.uniform(-60, 60, size=(examples, 2)),
        rng.uniform(-60, 60, size=(counter, 2)),
        "aef",
        2024,
    )


def saved_document(tmp_path, **changes):
    """The JSON of a valid saved query with some keys replaced (None removes a key)."""
    path = query_file.save(tmp_path / "q.geoembed-query.json", a_query())
    document = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            document.pop(key)
        else:
            document[key] = value
    return document


def write(tmp_path, content, name="hostile.geoembed-query.json"):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def assert_refused(path, *words):
    with pytest.raises(GeoEmbedError) as caught:
        query_file.load(path)
    message = str(caught.value)
    assert "\n" not in message and "Traceback" not in message, message
    assert str(path) in message or "QUERY_FILE" in message, message
    for word in words:
        assert word.lower() in message.lower(), f"{word!r} not in: {message}"
    return message


# --- round trip -----------------------------------------------------------------------------------------


def test_save_and_load_give_back_every_number_exactly(tmp_path):
    query = a_query()
    path = query_file.save(tmp_path / "q.geoembed-query.json", query)
    loaded = query_file.load(path)
    assert loaded.band_names == NAMES and loaded.product == "aef" and loaded.year == 2024
    assert np.array_equal(loaded.examples, query.examples.astype(np.float64))
    assert np.array_equal(loaded.counter_examples, query.counter_examples.astype(np.float64))
    assert np.array_equal(loaded.example_lonlat, query.example_lonlat)
    assert np.array_equal(loaded.counter_lonlat, query.counter_lonlat)
    document = json.loads(path.read_text())
    assert document["format"] == "geoembed-query" and document["version"] == 1 and document["dimensions"] == BANDS
    assert leftovers(tmp_path) == ["q.geoembed-query.json"]


def test_a_loaded_query_gives_the_same_heatmap_bit_for_bit(tmp_path):
    raster = random_raster(37, 29, bands=BANDS, seed=4)
    query = a_query(seed=5)
    loaded = query_file.load(query_file.save(tmp_path / "q.geoembed-query.json", query))
    heatmaps = []
    for q in (query, loaded):
        sim = SimilarityRaster(raster, query_vector(q.examples), query_vector(q.counter_examples), 5)
        heatmaps.append(read_all(sim, 16)[0])
    assert heatmaps[0].tobytes() == heatmaps[1].tobytes()


def test_union_puts_the_file_first_and_checks_bands():
    first, second = a_query(1, 2, 1), a_query(2, 3, 0)
    both = first.union(second)
    assert np.array_equal(both.examples, np.concatenate([first.examples, second.examples]))
    assert np.array_equal(both.counter_examples, first.counter_examples)
    assert len(both.example_lonlat) == 5 and len(both.counter_lonlat) == 1
    other = Query(NAMES[:-1], np.ones((1, BANDS - 1)), None)
    with pytest.raises(GeoEmbedError, match="15 bands"):
        first.union(other)


def test_band_names_must_match_the_input():
    query = a_query()
    query.check_bands(NAMES)
    with pytest.raises(GeoEmbedError) as caught:
        query.check_bands(tuple(f"B{i}" for i in range(BANDS + 1)))
    message = str(caught.value)
    assert "\n" not in message and "16 bands" in message and "INPUT has 17" in message


def test_a_query_without_examples_or_with_nan_is_not_saved(tmp_path):
    with pytest.raises(GeoEmbedError, match="at least one example"):
        query_file.save(tmp_path / "q.geoembed-query.json", Query(NAMES, None, np.ones((1, BANDS))))
    bad = a_query()
    bad.examples[0, 3] = np.nan
    with pytest.raises(GeoEmbedError, match="finite"):
        query_file.save(tmp_path / "q.geoembed-query.json", bad)
    assert leftovers(tmp_path) == []


# --- hostile files ------------------------------------------------------------------------------------------


class Boom:
    def __reduce__(self):
        return (print, ("pickle ran",))


def test_a_pickle_is_refused_without_being_opened(tmp_path, capsys):
    path = write(tmp_path, pickle.dumps({"format": "geoembed-query", "x": Boom()}))
    assert_refused(path, "pickle")
    assert "pickle ran" not in capsys.readouterr().out


def test_an_npz_is_refused(tmp_path):
    np.savez(tmp_path / "q.npz", a=np.zeros(3))
    assert_refused(tmp_path / "q.npz", "zip")


def test_a_huge_file_is_refused_before_it_is_read(tmp_path, monkeypatch):
    monkeypatch.setattr(query_file, "MAX_QUERY_BYTES", 1000)
    path = write(tmp_path, saved_document(tmp_path))
    assert_refused(path, "MiB", "fewer examples")


HOSTILE = {
    "not json": "{nope",
    "deep nesting": "[" * 100000 + "]" * 100000,
    "not the format": {"format": "something-else"},
    "a newer version": lambda d: {**d, "version": 7},
    "huge declared dimensions": lambda d: {**d, "dimensions": 10**12},
    "wrong band count": lambda d: {**d, "band_names": d["band_names"][:-1], "dimensions": BANDS - 1},
    "a short vector": lambda d: {**d, "examples": {"vectors": [[1.0] * (BANDS - 1)], "lonlat": [None]}},
    "NaN": lambda d: json.dumps(d).replace(str(d["examples"]["vectors"][0][0]), "NaN", 1),
    "Infinity": lambda d: json.dumps(d).replace(str(d["examples"]["vectors"][0][0]), "-Infinity", 1),
    "an overflowing number": lambda d: json.dumps(d).replace(str(d["examples"]["vectors"][0][0]), "1e999", 1),
    "a huge integer": lambda d: json.dumps(d).replace(str(d["examples"]["vectors"][0][0]), "9" * 4000, 1),
    "a string for a number": lambda d: {**d, "examples": {"vectors": [["x"] * BANDS], "lonlat": [None]}},
    "an all-zero vector": lambda d: {**d, "examples": {"vectors": [[0.0] * BANDS], "lonlat": [None]}},
    "no examples": lambda d: {**d, "examples": {"vectors": [], "lonlat": []}},
    "too many vectors": lambda d: {**d, "examples": {"vectors": [[1.0] * BANDS] * 100_001, "lonlat": [None] * 100_001}},
    "a bad lon/lat": lambda d: {**d, "examples": {"vectors": d["examples"]["vectors"], "lonlat": [[500, 0]] * 3}},
    "lon/lat count": lambda d: {**d, "examples": {"vectors": d["examples"]["vectors"], "lonlat": []}},
    "a bad year": lambda d: {**d, "year": "2024; rm -rf /"},
    "band names not text": lambda d: {**d, "band_names": list(range(BANDS))},
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_query_files_are_refused_in_one_line(tmp_path, case):
    content = HOSTILE[case]
    if callable(content):
        content = content(saved_document(tmp_path))
    path = write(tmp_path, content)
    message = assert_refused(path, "not a valid GeoEmbed query" if case != "not json" else "JSON")
    assert len(message) < 400, message


def test_missing_empty_and_folder_are_refused(tmp_path):
    assert_refused(tmp_path / "missing.geoembed-query.json", "does not exist")
    assert_refused(write(tmp_path, ""), "empty")
    assert_refused(tmp_path, "folder")


# --- the score with counter-examples ------------------------------------------------------------------------


def test_counter_examples_subtract_their_cosine_and_positive_only_is_unchanged():
    raster = random_raster(23, 31, bands=BANDS, seed=8)
    query = a_query(seed=9)
    positive, negative = query_vector(query.examples), query_vector(query.counter_examples)
    alone, _ = read_all(SimilarityRaster(raster, positive, None), 8)
    both, valid = read_all(SimilarityRaster(raster, positive, negative), 8)
    cos_p, cos_n = brute_cosine(raster, positive), brute_cosine(raster, negative)
    assert np.abs(alone - cos_p)[valid].max() < 1e-5
    assert np.abs(both - (cos_p - cos_n))[valid].max() < 1e-5
    assert (both[valid] >= -2 - 1e-6).all() and (both[valid] <= 2 + 1e-6).all()


def test_a_pixel_made_a_counter_example_scores_lower_and_an_example_higher():
    raster = random_raster(20, 20, bands=BANDS, seed=3)
    pixel = lambda r, c: raster.values[:, r, c].astype(np.float64)  # noqa: E731
    rows_cols = [tuple(rc) for rc in np.argwhere(raster.valid)[:3]]
    first, wrong, right = rows_cols
    before, _ = read_all(SimilarityRaster(raster, query_vector([pixel(*first)]), None), 8)
    after, _ = read_all(SimilarityRaster(raster, query_vector([pixel(*first), pixel(*right)]), query_vector([pixel(*wrong)])), 8)
    assert after[wrong] < before[wrong] - 0.5
    assert after[right] > before[right]
