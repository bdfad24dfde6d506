"""geoembed:pca maths: the block-wise uniform pixel sample, the fitted projection and stretch, the model file,
and identical colours for identical vectors when a model is reused. Expectations are computed here with numpy
(SVD, percentiles, the stretch formula written out), never with geoembed's own functions."""

import json
import os
import tracemalloc

import numpy as np
import pytest
from osgeo import gdal

from geoembed.analysis.pca import PCA_FORMAT, PcaModel, fit_model, fit_raster, load_model
from geoembed.analysis.pixel_sample import sample_pixels
from geoembed.loaders.errors import Cancelled, GeoEmbedError
from geoembed.loaders.model import EmbeddingBlock, EmbeddingRaster, Provenance
from geoembed.loaders.raster.grid import Window
from geoembed.loaders.raster.writer import OutputSpec, write_rasters
from tests.unit.helpers import assert_one_line, leftovers
from tests.unit.test_analysis_memraster import MemRaster, make_grid, random_raster

# ---------------------------------------------------------------- independent expectations


def svd_pca(samples, k=3):
    """(mean, axes) by SVD of the centred samples, each axis signed so that its largest loading is positive."""
    samples = np.asarray(samples, dtype=np.float64)
    mean = samples.mean(axis=0)
    _, _, vt = np.linalg.svd(samples - mean, full_matrices=False)
    axes = vt[:k].copy()
    for axis in axes:
        if axis[np.abs(axis).argmax()] < 0:
            axis *= -1
    return mean, axes


def expected_rgb(values, valid, mean, axes, lows, highs):
    """The documented formula: 1 + round(254 * clip((proj - low) / (high - low), 0, 1)), 0 on nodata."""
    bands, rows, cols = values.shape
    out = np.zeros((3, rows, cols), dtype=np.uint8)
    for r in range(rows):
        for c in range(cols):
            if not valid[r, c]:
                continue
            x = values[:, r, c].astype(np.float64)
            for channel in range(3):
                a = min(channel, len(axes) - 1)
                p = float(np.dot(x - mean, axes[a]))
                t = min(max((p - lows[a]) / (highs[a] - lows[a]), 0.0), 1.0)
                out[channel, r, c] = int(np.round(1 + 254 * t))
    return out


def structured_raster(width, height, bands=12, seed=0, holes=0.1, shift=0.0, grid=None):
    """Vectors with three strong directions (variances 25, 9, 4) plus noise; `shift` moves the whole cloud."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(np.random.default_rng(99).normal(size=(bands, bands)))
    strong = min(3, bands)
    scores = rng.normal(size=(height * width, strong)) * np.array([5.0, 3.0, 2.0])[:strong]
    vectors = scores @ basis[:strong] + 0.2 * rng.normal(size=(height * width, bands)) + shift
    values = vectors.T.reshape(bands, height, width)
    valid = rng.random((height, width)) >= holes
    return MemRaster(values, valid, grid if grid is not None else make_grid(width, height))


# ---------------------------------------------------------------- the block-wise pixel sample


def test_sample_larger_than_the_valid_pixels_is_every_valid_pixel_once():
    raster = random_raster(70, 45, bands=5, seed=3)
    samples, count = sample_pixels(raster, 10_000, seed=1, block=16)
    assert count == raster.valid.sum()
    assert samples.shape == (count, 5) and samples.dtype == np.float32
    expected = raster.values[:, raster.valid].T
    got_sorted = samples[np.lexsort(samples.T[::-1])]
    want_sorted = expected[np.lexsort(expected.T[::-1])]
    np.testing.assert_array_equal(got_sorted, want_sorted)


def test_sample_holds_only_valid_pixels_without_repeats():
    raster = random_raster(60, 50, bands=4, seed=5, holes=0.4)
    samples, count = sample_pixels(raster, 300, seed=2, block=16)
    assert samples.shape == (300, 4) and count == raster.valid.sum()
    assert not (samples == -9999.0).any(), "a nodata pixel was sampled"
    assert len(np.unique(samples, axis=0)) == 300, "a pixel was drawn twice"
    lookup = {tuple(v) for v in raster.values[:, raster.valid].T.tolist()}
    assert all(tuple(v) in lookup for v in samples.tolist())


def test_sample_reads_each_block_once_in_bounded_windows():
    raster = random_raster(100, 70, bands=3, seed=1)
    sample_pixels(raster, 50, seed=0, block=32)
    expected = [(c, r) for r in range(0, 70, 32) for c in range(0, 100, 32)]
    assert [(w.col, w.row) for w in raster.reads] == expected
    assert all(w.width <= 32 and w.height <= 32 for w in raster.reads)


def test_sample_is_uniform_over_pixels_and_blocks():
    """Every valid pixel is drawn with probability size / valid pixels, wherever its block is and however
    many valid pixels its block has (a per-block quota or a 'first n' would fail this)."""
    width, height = 64, 64
    valid = np.ones((height, width), dtype=bool)
    valid[:32, :32] = np.random.default_rng(0).random((32, 32)) < 0.25  # a sparse block
    raster = MemRaster(np.arange(width * height, dtype=np.float32).reshape(1, height, width), valid, make_grid(width, height))
    hits = np.zeros(width * height)
    runs, size = 300, 400
    for seed in range(runs):
        samples, count = sample_pixels(raster, size, seed=seed, block=32)
        hits[samples[:, 0].astype(int)] += 1
    rate = hits.reshape(height, width) / runs
    expected = size / valid.sum()
    assert (rate[~valid] == 0).all()
    for rows, cols in (
        (slice(0, 32), slice(0, 32)),
        (slice(0, 32), slice(32, 64)),
        (slice(32, 64), slice(0, 32)),
        (slice(32, 64), slice(32, 64)),
    ):
        block_rate = rate[rows, cols][valid[rows, cols]].mean()
        assert block_rate == pytest.approx(expected, rel=0.05), (rows, cols, block_rate, expected)


def test_sample_is_deterministic_for_a_seed():
    raster = random_raster(50, 40, bands=3, seed=2)
    a, _ = sample_pixels(raster, 100, seed=7, block=16)
    b, _ = sample_pixels(raster, 100, seed=7, block=16)
    c, _ = sample_pixels(raster, 100, seed=8, block=16)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(np.sort(a, axis=0), np.sort(c, axis=0))


def test_sample_progress_and_cancel():
    raster = random_raster(40, 40, bands=2, seed=0)
    progress = []
    sample_pixels(raster, 10, block=16, progress=progress.append)
    assert progress == pytest.approx([1 / 9, 2 / 9, 3 / 9, 4 / 9, 5 / 9, 6 / 9, 7 / 9, 8 / 9, 1.0])
    calls = []

    def cancel():
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(Cancelled):
        sample_pixels(raster, 10, block=16, is_cancelled=cancel)
    assert len(raster.reads) == 9 + 2, "reading must stop at the cancel"


# ---------------------------------------------------------------- fitting


def test_fit_model_matches_svd_and_percentiles():
    raster = structured_raster(60, 50)
    samples = raster.values[:, raster.valid].T.astype(np.float64)
    model = fit_model(samples, raster.band_names, "test")
    mean, axes = svd_pca(samples)
    np.testing.assert_allclose(model.mean, mean, atol=1e-10)
    np.testing.assert_allclose(model.axes, axes, atol=1e-8)
    projected = (samples - mean) @ axes.T
    np.testing.assert_allclose(model.lows, np.percentile(projected, 2, axis=0), atol=1e-8)
    np.testing.assert_allclose(model.highs, np.percentile(projected, 98, axis=0), atol=1e-8)
    _, singular, _ = np.linalg.svd(samples - mean, full_matrices=False)
    np.testing.assert_allclose(model.variances, singular[:3] ** 2 / (len(samples) - 1), rtol=1e-8)
    total = ((samples - mean) ** 2).sum() / (len(samples) - 1)
    np.testing.assert_allclose(model.explained(), singular[:3] ** 2 / (len(samples) - 1) / total, rtol=1e-8)
    assert model.explained()[0] > 0.5  # variance 25 of about 38 + noise


def test_fit_raster_on_all_valid_pixels_equals_the_independent_fit():
    raster = structured_raster(40, 30, seed=4)
    model, count = fit_raster(raster, sample_size=10_000, seed=0)
    samples = raster.values[:, raster.valid].T.astype(np.float64)
    assert count == len(samples) and model.sample_size == len(samples)
    mean, axes = svd_pca(samples)
    np.testing.assert_allclose(model.axes, axes, atol=1e-8)
    lows = np.percentile((samples - mean) @ axes.T, 2, axis=0)
    highs = np.percentile((samples - mean) @ axes.T, 98, axis=0)
    got = model.rgb(raster.values, raster.valid)
    want = expected_rgb(raster.values, raster.valid, mean, axes, lows, highs)
    assert (got[:, ~raster.valid] == 0).all() and (got[:, raster.valid] >= 1).all()
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1  # float noise at a .5 rounding edge at most
    assert (got == want).mean() > 0.999
    # 2 % of the sample below the low limit and 2 % above the high one: the extremes are 1 and 255
    for channel in range(3):
        share_low = (got[channel][raster.valid] == 1).mean()
        share_high = (got[channel][raster.valid] == 255).mean()
        assert 0.015 < share_low < 0.03 and 0.015 < share_high < 0.03, (channel, share_low, share_high)


def test_fit_raster_on_a_sample_is_close_to_the_full_fit():
    raster = structured_raster(120, 100, seed=6)
    model, _ = fit_raster(raster, sample_size=3000, seed=1)
    assert model.sample_size == 3000
    _, axes = svd_pca(raster.values[:, raster.valid].T)
    for found, true in zip(model.axes, axes):
        assert found @ true > 0.99  # same axes, same signs


def test_fit_raster_refuses_an_all_nodata_raster():
    raster = MemRaster(np.ones((4, 6, 7)), np.zeros((6, 7), dtype=bool), make_grid(7, 6))
    with pytest.raises(GeoEmbedError) as caught:
        fit_raster(raster, 100)
    assert "no valid pixel" in assert_one_line(caught.value)


def test_two_bands_repeat_the_last_component():
    raster = structured_raster(20, 20, bands=2, seed=1)
    model, _ = fit_raster(raster, 1000)
    assert model.axes.shape == (2, 2)
    rgb = model.rgb(raster.values, raster.valid)
    np.testing.assert_array_equal(rgb[2], rgb[1])
    assert not np.array_equal(rgb[0], rgb[1])


def test_constant_raster_gives_valid_bytes():
    values = np.ones((5, 8, 8))
    valid = np.ones((8, 8), dtype=bool)
    valid[0, 0] = False
    model, _ = fit_raster(MemRaster(values, valid, make_grid(8, 8)), 100)
    assert model.explained().tolist() == [0.0, 0.0, 0.0]
    rgb = model.rgb(np.ones((5, 8, 8)), valid)
    assert (rgb[:, valid] >= 1).all() and (rgb[:, ~valid] == 0).all()


# ---------------------------------------------------------------- applying, block by block


def test_block_by_block_output_equals_the_whole_array(tmp_path):
    raster = structured_raster(50, 37, seed=2)
    model, _ = fit_raster(raster, 500, seed=3)
    path = str(tmp_path / "rgb.tif")
    spec = OutputSpec(path, ("PC1", "PC2", "PC3"), gdal.GDT_Byte, 0)
    write_rasters(raster.grid, [spec], lambda w: [model.produce(raster.read(w))], block=16)
    written = gdal.Open(path).ReadAsArray()
    np.testing.assert_array_equal(written, model.rgb(raster.values, raster.valid))
    assert written.dtype == np.uint8 and (written[:, ~raster.valid] == 0).all()


def test_reused_model_gives_identical_colours_to_shared_pixels_across_tiles(tmp_path):
    """Tile B shares a 20 x 30 patch of pixels with tile A and holds other, shifted vectors elsewhere. With A's
    model reused, the shared pixels get A's colours exactly; a model fitted on B alone colours them differently."""
    a = structured_raster(60, 40, seed=1)
    b = structured_raster(50, 45, seed=2, shift=3.0)
    b.values[:, 10:30, 5:35] = a.values[:, 15:35, 20:50]
    b.valid[10:30, 5:35] = a.valid[15:35, 20:50]
    model_a, _ = fit_raster(a, 2000, seed=0)
    path = model_a.save(str(tmp_path / "pca.json"))
    reused = load_model(path)
    rgb_a = model_a.rgb(a.values, a.valid)[:, 15:35, 20:50]
    rgb_b = reused.rgb(b.values, b.valid)[:, 10:30, 5:35]
    shared = a.valid[15:35, 20:50]
    assert shared.sum() > 400
    np.testing.assert_array_equal(rgb_b[:, shared], rgb_a[:, shared])
    model_b, _ = fit_raster(b, 2000, seed=0)
    drifted = model_b.rgb(b.values, b.valid)[:, 10:30, 5:35]
    assert (drifted[:, shared] != rgb_a[:, shared]).mean() > 0.5, "a per-tile fit should change the colours"


def test_reuse_is_independent_of_block_size_and_position():
    raster = structured_raster(33, 29, seed=3)
    model, _ = fit_raster(raster, 800)
    whole = model.rgb(raster.values, raster.valid)
    for size in (1, 7, 13):
        for row in range(0, 29, size):
            for col in range(0, 33, size):
                part = model.rgb(
                    raster.values[:, row : row + size, col : col + size], raster.valid[row : row + size, col : col + size]
                )
                np.testing.assert_array_equal(part, whole[:, row : row + size, col : col + size])


# ---------------------------------------------------------------- the model file


def test_model_file_round_trips_exactly_and_documents_itself(tmp_path):
    raster = structured_raster(30, 30, seed=8)
    model, _ = fit_raster(raster, 500)
    path = model.save(str(tmp_path / "model.json"))
    assert leftovers(tmp_path) == ["model.json"], "no partial file may stay"
    with open(path, encoding="utf-8") as handle:
        payload = json.load(handle)
    assert payload["format"] == PCA_FORMAT
    assert payload["band_names"] == list(raster.band_names) and payload["product"] == "test"
    assert np.array(payload["axes"]).shape == (3, 12) and len(payload["mean"]) == 12
    assert payload["stretch"]["percentiles"] == [2.0, 98.0]
    assert len(payload["stretch"]["low"]) == len(payload["stretch"]["high"]) == 3
    assert payload["sample_size"] == 500
    assert {"geoembed", "numpy", "python"} <= set(payload["versions"])
    loaded = load_model(path)
    for name in ("mean", "axes", "lows", "highs", "variances"):
        assert np.array_equal(getattr(loaded, name), getattr(model, name)), name
    assert loaded.band_names == model.band_names and loaded.percentiles == model.percentiles
    np.testing.assert_array_equal(loaded.rgb(raster.values, raster.valid), model.rgb(raster.values, raster.valid))


def test_model_with_other_bands_is_refused(tmp_path):
    model, _ = fit_raster(structured_raster(10, 10, seed=1), 100)
    model.check_bands(model.band_names)
    for other in (tuple(f"E{i:02d}" for i in range(12)), model.band_names[:11], (*model.band_names, "A12")):
        with pytest.raises(GeoEmbedError) as caught:
            model.check_bands(other)
        message = assert_one_line(caught.value)
        assert "bands" in message and "same product" in message


def _write(path, content):
    mode = "wb" if isinstance(content, bytes) else "w"
    with open(path, mode) as out:
        out.write(content)
    return str(path)


@pytest.mark.parametrize(
    "content, words",
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00", "not a GeoEmbed PCA model"),
        ("not json at all", "not a GeoEmbed PCA model"),
        ("[1, 2, 3]", "not a GeoEmbed PCA model"),
        ('{"format": "geoembed-model-1"}', "not a GeoEmbed PCA model"),
        ('{"format": "geoembed-pca-1"}', "damaged"),
    ],
    ids=["binary", "text", "list", "other-format", "no-fields"],
)
def test_load_model_refuses_other_files_in_one_line(tmp_path, content, words):
    with pytest.raises(GeoEmbedError) as caught:
        load_model(_write(tmp_path / "x.json", content))
    assert words in assert_one_line(caught.value)


@pytest.mark.parametrize("damage", ["axes-width", "mean", "lows", "nan", "four-axes"])
def test_load_model_refuses_damaged_models(tmp_path, damage):
    model, _ = fit_raster(structured_raster(10, 10, seed=1), 100)
    payload = model.to_dict()
    if damage == "axes-width":
        payload["axes"] = [axis[:-1] for axis in payload["axes"]]
    elif damage == "mean":
        payload["mean"] = payload["mean"][:5]
    elif damage == "lows":
        payload["stretch"]["low"] = payload["stretch"]["low"][:2]
    elif damage == "nan":
        payload["mean"][0] = float("nan")
    else:
        payload["axes"] = payload["axes"] + payload["axes"][:1]
        payload["stretch"]["low"].append(0.0)
        payload["stretch"]["high"].append(1.0)
    with pytest.raises(GeoEmbedError) as caught:
        load_model(_write(tmp_path / "x.json", json.dumps(payload)))
    assert "damaged" in assert_one_line(caught.value)


def test_load_model_missing_file_or_folder(tmp_path):
    with pytest.raises(GeoEmbedError) as caught:
        load_model(str(tmp_path / "nope.json"))
    assert "does not exist" in assert_one_line(caught.value)
    os.mkdir(tmp_path / "folder.json")
    with pytest.raises(GeoEmbedError) as caught:
        load_model(str(tmp_path / "folder.json"))
    assert "folder" in assert_one_line(caught.value)


def test_pca_model_constructor_keeps_what_it_is_given():
    model = PcaModel(np.zeros(4), np.eye(4)[:3], [0, 0, 0], [1, 1, 1], ("a", "b", "c", "d"), "p")
    values = np.array([0.5, 0.0, 2.0, 7.0]).reshape(4, 1, 1)
    rgb = model.rgb(values, np.ones((1, 1), dtype=bool))
    assert rgb[:, 0, 0].tolist() == [128, 1, 255]  # 1 + round(254 * 0.5) = 128; clipped at 0 and 1


# ---------------------------------------------------------------- bounded memory


class SyntheticRaster(EmbeddingRaster):
    """A 2048 x 2048 x 64 raster (1 GiB as float32) whose blocks are computed on request; refuses big reads."""

    def __init__(self, size=2048, bands=64, limit=512):
        self.grid = make_grid(size, size)
        self.band_names = tuple(f"A{i:02d}" for i in range(bands))
        self.provenance = Provenance(product="synthetic", product_name="synthetic")
        self.limit = limit

    def read(self, window):
        assert window.width <= self.limit and window.height <= self.limit, f"read of {window.width} x {window.height}"
        rows = np.arange(window.row, window.row + window.height, dtype=np.float32)[:, np.newaxis]
        cols = np.arange(window.col, window.col + window.width, dtype=np.float32)[np.newaxis, :]
        phase = np.arange(len(self.band_names), dtype=np.float32)[:, np.newaxis, np.newaxis]
        values = np.sin(0.01 * rows + 0.37 * phase) + np.cos(0.013 * cols - 0.21 * phase)
        valid = ((rows.astype(np.int64) // 7 + cols.astype(np.int64) // 5) % 11) != 0
        return EmbeddingBlock(values.astype(np.float32), valid)


def test_fit_and_apply_stay_within_a_few_blocks_of_memory(tmp_path):
    raster = SyntheticRaster()
    tracemalloc.start()
    try:
        model, count = fit_raster(raster, 50_000, seed=0)
        spec = OutputSpec(str(tmp_path / "rgb.tif"), ("PC1", "PC2", "PC3"), gdal.GDT_Byte, 0)
        write_rasters(raster.grid, [spec], lambda w: [model.produce(raster.read(w))])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    whole, block = 2048 * 2048 * 64 * 4, 512 * 512 * 64 * 4
    assert count > 0.8 * 2048 * 2048 and model.sample_size == 50_000
    assert (
        peak < 4 * block
    ), f"peak {peak / 2**20:.0f} MiB for a {whole / 2**20:.0f} MiB raster read in {block / 2**20:.0f} MiB blocks"
    written = gdal.Open(spec.path).ReadAsArray(1000, 1000, 40, 40)
    block = raster.read(Window(1000, 1000, 40, 40))
    np.testing.assert_array_equal(written, model.rgb(block.values, block.valid))
