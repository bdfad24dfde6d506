"""compare: the common grid, paired samples at the same pixels, the same folds for both products, McNemar, the verdict."""

import math

import numpy as np
import pytest

from geoembed.analysis import classify, compare
from geoembed.analysis.resample import AggregateRaster
from geoembed.loaders.errors import GeoEmbedError
from geoembed.loaders.raster.grid import Window
from geoembed.loaders.raster.mosaic import TileMosaic
from tests.unit.helpers import assert_one_line
from tests.unit.test_analysis_memraster import make_grid, random_raster


def test_common_grid_is_the_first_grid_when_the_second_covers_it():
    first = random_raster(20, 10)
    second = random_raster(40, 30, grid=make_grid(40, 30, x0=first.grid.x0 - 50, y0=first.grid.y0 + 50))
    assert compare.common_grid(first, second) == first.grid


def test_common_grid_is_cut_to_the_shared_area_on_the_first_lattice():
    first = random_raster(20, 10)
    second = random_raster(20, 10, grid=make_grid(20, 10, x0=first.grid.x0 + 75.0, y0=first.grid.y0 - 32.0))
    grid = compare.common_grid(first, second)
    assert (grid.res_x, grid.res_y, grid.crs) == (10.0, 10.0, first.grid.crs)
    assert (grid.x0 - first.grid.x0) % 10.0 == 0 and (first.grid.y0 - grid.y0) % 10.0 == 0, "pixels of INPUT's grid"
    assert grid.x0 == first.grid.x0 + 70.0 and grid.y0 == first.grid.y0 - 30.0
    assert (grid.width, grid.height) == (13, 7)


def test_common_grid_with_a_resolution_keeps_the_first_origin():
    first = random_raster(20, 10)
    second = random_raster(20, 10)
    grid = compare.common_grid(first, second, 30.0)
    assert (grid.x0, grid.y0, grid.res_x, grid.width, grid.height) == (first.grid.x0, first.grid.y0, 30.0, 7, 4)


def test_common_grid_refuses_rasters_that_do_not_overlap():
    first = random_raster(20, 10)
    second = random_raster(20, 10, grid=make_grid(20, 10, x0=first.grid.x0 + 5000))
    with pytest.raises(GeoEmbedError) as info:
        compare.common_grid(first, second)
    assert "do not overlap" in assert_one_line(info.value)
    with pytest.raises(GeoEmbedError) as info:
        compare.common_grid(first, first, 0.0)
    assert "RESOLUTION" in assert_one_line(info.value)


def test_on_grid_aggregates_finer_products_and_takes_coarser_ones_with_nearest():
    fine = random_raster(40, 40, res_x=10.0)
    coarse = random_raster(20, 20, res_x=20.0)
    grid = fine.grid
    assert compare.on_grid(fine, grid) == (fine, "none")
    moved, how = compare.on_grid(coarse, grid)
    assert how == "nearest" and isinstance(moved, TileMosaic) and moved.grid == grid
    moved, how = compare.on_grid(fine, coarse.grid)
    assert how == "aggregate" and isinstance(moved, AggregateRaster)
    moved.close()


def test_on_grid_cuts_a_raster_to_a_window_of_its_own_pixels_without_resampling():
    first = random_raster(30, 20)
    second = random_raster(30, 20, grid=make_grid(30, 20, x0=first.grid.x0 + 100.0, y0=first.grid.y0 - 50.0))
    grid = compare.common_grid(first, second)
    moved, how = compare.on_grid(first, grid)
    assert how == "none" and moved.grid == grid
    block = moved.read(Window(0, 0, grid.width, grid.height))
    assert np.array_equal(block.values, first.values[:, 5:, 10:]) and np.array_equal(block.valid, first.valid[5:, 10:])
    shifted = random_raster(30, 20, grid=make_grid(30, 20, x0=first.grid.x0 + 5.0))
    assert compare.on_grid(shifted, first.grid)[1] == "nearest", "half a pixel away is resampling"


def two_products(seed=0):
    """Two products on one 10 m grid with 6 and 9 bands and different nodata."""
    first = random_raster(60, 40, bands=6, seed=seed, holes=0.1)
    second = random_raster(60, 40, bands=9, seed=seed + 1, holes=0.1, box=False, grid=first.grid)
    return first, second


def test_paired_samples_are_taken_at_the_same_pixels_where_both_are_valid():
    first, second = two_products()
    grid = first.grid
    rng = np.random.default_rng(4)
    cols, rows = rng.integers(0, 60, 80), rng.integers(0, 40, 80)
    points = [("point", (grid.x0 + (c + 0.3) * 10, grid.y0 - (r + 0.6) * 10)) for c, r in zip(cols, rows)]
    ring = np.array([(grid.x0 + 101, grid.y0 - 99), (grid.x0 + 199, grid.y0 - 99), (grid.x0 + 199, grid.y0 - 251),
                     (grid.x0 + 101, grid.y0 - 251), (grid.x0 + 101, grid.y0 - 99)])  # fmt: skip
    geometries = [*points, ("polygon", [ring])]
    labels = [i % 3 for i in range(len(points))] + [7]
    paired = compare.PairedRaster(first, second)
    a, b, got_labels, xs, ys = compare.paired_samples(paired, geometries, labels)
    both = first.valid & second.valid
    expected = []
    for (c, r), label in zip(zip(cols, rows), labels):
        if both[r, c]:
            expected.append((c, r, label))
    for r in range(10, 25):  # centres inside the polygon: cols 10..19, rows 10..24
        for c in range(10, 20):
            if both[r, c]:
                expected.append((c, r, 7))
    assert len(got_labels) == len(expected)
    assert a.shape == (len(expected), 6) and b.shape == (len(expected), 9)
    for i, (c, r, label) in enumerate(expected):
        assert got_labels[i] == label
        assert np.array_equal(a[i], first.values[:, r, c]) and np.array_equal(b[i], second.values[:, r, c])
        assert math.floor((xs[i] - grid.x0) / 10) == c and math.floor((grid.y0 - ys[i]) / 10) == r


def test_paired_raster_refuses_two_grids():
    first = random_raster(10, 10)
    with pytest.raises(GeoEmbedError):
        compare.PairedRaster(first, random_raster(10, 11))


def separable(n=300, seed=0, noise=(0.3, 1.2)):
    """Features of two products for the same labelled samples: the first separates 3 classes well, the second badly."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    centres_a, centres_b = rng.normal(size=(3, 6)) * 2, rng.normal(size=(3, 9)) * 2
    a = centres_a[labels] + noise[0] * rng.normal(size=(n, 6))
    b = centres_b[labels] + noise[1] * 2 * rng.normal(size=(n, 9))
    xs, ys = rng.uniform(0, 1000, n), rng.uniform(0, 1000, n)
    return a, b, labels, xs, ys


@pytest.mark.parametrize("method", ["nearest_centroid", "knn", "logistic_regression"])
def test_evaluate_equals_cross_validate_run_on_each_product_alone_with_the_same_folds(method):
    a, b, labels, xs, ys = separable()
    groups = classify.spatial_blocks(xs, ys, 200.0)
    results = compare.evaluate([a, b], labels, groups, method, [0, 1, 2])
    for features, result in zip((a, b), results):
        alone = classify.cross_validate(features, labels, groups, method)
        assert np.array_equal(result["predicted"], alone)
        assert result["accuracy"] == pytest.approx((alone == labels).mean())
        f1 = []
        for c in range(3):
            tp = ((alone == c) & (labels == c)).sum()
            precision, recall = tp / max((alone == c).sum(), 1), tp / (labels == c).sum()
            f1.append(0.0 if tp == 0 else 2 * precision * recall / (precision + recall))
        assert result["macro_f1"] == pytest.approx(np.mean(f1))
    # the same folds: every block's samples are held out together, in the same fold for both products
    folds = classify.blocked_folds(groups, 5)
    for block in np.unique(groups):
        assert len(np.unique(folds[groups == block])) == 1
    assert results[0]["accuracy"] > results[1]["accuracy"]


def test_evaluate_refuses_a_single_spatial_block():
    a, b, labels, _, _ = separable(30)
    with pytest.raises(GeoEmbedError) as info:
        compare.evaluate([a, b], labels, np.zeros(30, dtype=int), "nearest_centroid", [0, 1, 2])
    assert "single spatial block" in assert_one_line(info.value)


def test_mcnemar_equals_the_exact_binomial_test():
    from scipy.stats import binomtest

    truth = np.zeros(60, dtype=int)
    first = np.zeros(60, dtype=int)
    second = np.zeros(60, dtype=int)
    first[:9] = 1  # first wrong on 0..8
    second[5:30] = 1  # second wrong on 5..29
    only_first, only_second, p = compare.mcnemar(truth, first, second)
    assert (only_first, only_second) == (21, 5)
    assert p == pytest.approx(binomtest(5, 26, 0.5).pvalue, rel=1e-9)
    assert compare.mcnemar(truth, first, first) == (0, 0, 1.0)
    big_first, big_second = np.zeros(5000, dtype=int), np.zeros(5000, dtype=int)
    big_first[:1200], big_second[1000:2300] = 1, 1
    only_first, only_second, p = compare.mcnemar(np.zeros(5000, dtype=int), big_first, big_second)
    assert (only_first, only_second) == (1100, 1000)
    assert p == pytest.approx(binomtest(1000, 2100, 0.5).pvalue, rel=1e-6)


def fake_result(accuracy, macro_f1):
    return {"accuracy": accuracy, "macro_f1": macro_f1}


def test_verdict_names_the_better_product_only_when_the_difference_is_significant():
    names = ["aef 2024 (a.tif)", "tessera 2024 (b.tif)"]
    best, text = compare.verdict(names, [64, 128], [fake_result(0.9, 0.88), fake_result(0.7, 0.65)], 0.001, 400)
    assert best == 0 and text.startswith("Use aef 2024 (a.tif) here")
    assert "aef 2024 (a.tif): macro F1 0.880, accuracy 90.0 %; tessera 2024 (b.tif): macro F1 0.650, accuracy 70.0 %" in text
    assert "McNemar p = 0.001 on the same 400 samples" in text
    best, text = compare.verdict(names, [64, 128], [fake_result(0.80, 0.78), fake_result(0.81, 0.79)], 0.6, 400)
    assert best is None and text.startswith("No clear winner") and "fewer dimensions (64 vs 128)" in text
    best, text = compare.verdict(names, [64, 64], [fake_result(0.9, 0.6), fake_result(0.8, 0.7)], 0.001, 400)
    assert best is None and "higher accuracy" in text and "higher macro F1" in text
    assert "\n" not in text


def test_compare_html_shows_both_products_side_by_side():
    a, b, labels, xs, ys = separable()
    results = compare.evaluate([a, b], labels, classify.spatial_blocks(xs, ys, 200.0), "nearest_centroid", [0, 1, 2])
    page = compare.compare_html(
        "Comparison", ["first <1>", "second"], [("Dimensions", [6, 9])], ["crop", "forest", "water"],
        np.bincount(labels), results, "Use first <1> here.", ["a note"],
    )  # fmt: skip
    assert "first &lt;1&gt;" in page and "<1>" not in page
    assert page.count("<td>6</td>") == 1 and "<td>9</td>" in page
    for i, name in enumerate(["crop", "forest", "water"]):
        assert f"F1 {name}" in page
        assert f"<td class='l'>{name}</td><td>{np.bincount(labels)[i]}</td>" in page
        assert f"{results[0]['f1'][i]:.3f}" in page and f"{results[1]['f1'][i]:.3f}" in page
    assert f"{100 * results[0]['accuracy']:.1f} %" in page and f"{results[1]['macro_f1']:.3f}" in page
    assert "Use first &lt;1&gt; here." in page and "a note" in page
