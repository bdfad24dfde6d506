"""intrinsic: PCA spectrum against numpy's SVD, nearest neighbours against a full distance matrix, TwoNN on data of
known dimension (planes and subspaces embedded in 64-D), duplicates, the SVG plot."""

import numpy as np
import pytest

from geoembed.analysis import intrinsic
from geoembed.loaders.errors import Cancelled, GeoEmbedError
from tests.unit.helpers import assert_one_line


def embedded(n, dim, ambient=64, seed=0, gaussian=True, offset=0.3):
    """n points spread over a dim-dimensional linear subspace of an ambient space (random rotation and offset)."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(ambient, dim)))[0]
    coords = rng.normal(size=(n, dim)) if gaussian else rng.uniform(size=(n, dim))
    return coords @ basis.T + offset


def test_pca_spectrum_equals_numpy_svd():
    rng = np.random.default_rng(1)
    samples = rng.normal(size=(500, 12)) * np.linspace(3, 0.1, 12) @ np.linalg.qr(rng.normal(size=(12, 12)))[0]
    _, ratios, cumulative = intrinsic.pca_spectrum(samples)
    singular = np.linalg.svd(samples - samples.mean(axis=0), compute_uv=False)
    expected = singular**2 / (singular**2).sum()
    assert ratios == pytest.approx(expected, abs=1e-12)
    assert cumulative == pytest.approx(np.cumsum(expected), abs=1e-12)
    assert cumulative[-1] == pytest.approx(1.0)


@pytest.mark.parametrize("fraction", [0.9, 0.95, 0.99, 0.5])
def test_components_for_is_the_first_count_reaching_the_fraction(fraction):
    cumulative = np.cumsum([0.5, 0.3, 0.1, 0.05, 0.04, 0.01])
    count = 1
    while cumulative[count - 1] < fraction - 1e-12:
        count += 1
    assert intrinsic.components_for(cumulative, fraction) == count


def test_a_5d_subspace_needs_5_components():
    samples = embedded(4000, 5)
    _, _, cumulative = intrinsic.pca_spectrum(samples)
    assert intrinsic.components_for(cumulative, 0.99) <= 5
    assert cumulative[4] == pytest.approx(1.0, abs=1e-9)


def test_identical_vectors_have_no_spectrum():
    with pytest.raises(GeoEmbedError) as info:
        intrinsic.pca_spectrum(np.ones((50, 4)))
    assert "identical" in assert_one_line(info.value)


@pytest.mark.parametrize("max_bytes", [10_000, intrinsic.DISTANCE_BYTES])
def test_two_nearest_equals_a_full_distance_matrix(max_bytes):
    points = embedded(700, 7, seed=3)
    r1, r2 = intrinsic.two_nearest(points, max_bytes=max_bytes)
    full = np.sqrt(((points[:, None, :] - points[None, :, :]) ** 2).sum(axis=2))
    np.fill_diagonal(full, np.inf)
    ordered = np.sort(full, axis=1)
    assert r1 == pytest.approx(ordered[:, 0], rel=1e-12)
    assert r2 == pytest.approx(ordered[:, 1], rel=1e-12)


def test_two_nearest_reports_progress_and_honours_cancel():
    points = embedded(400, 3)
    seen = []
    intrinsic.two_nearest(points, progress=seen.append, max_bytes=8 * 400 * 50)
    assert len(seen) == 8 and seen[-1] == 1.0
    with pytest.raises(Cancelled):
        intrinsic.two_nearest(points, is_cancelled=lambda: True)


@pytest.mark.parametrize(
    "dim, n, gaussian, tolerance",
    [(2, 5000, False, 0.15), (2, 5000, True, 0.15), (5, 20000, True, 0.4), (10, 20000, True, 1.0)],
    ids=["plane-uniform", "plane-gaussian", "5d-gaussian", "10d-gaussian"],
)
def test_two_nn_finds_the_dimension_of_a_subspace_of_64d(dim, n, gaussian, tolerance):
    points = embedded(n, dim, gaussian=gaussian, seed=dim)
    estimate = intrinsic.two_nn(*intrinsic.two_nearest(points))
    assert estimate["dimension"] == pytest.approx(dim, abs=tolerance)
    assert estimate["dimension_mle"] == pytest.approx(dim, abs=tolerance)
    assert estimate["points"] == n and estimate["zero_distances"] == 0


def test_two_nn_on_a_curved_2d_surface_in_64d():
    """A Swiss-roll-like sheet: 2-D although it fills 3 directions (PCA says 3)."""
    rng = np.random.default_rng(9)
    t, h = rng.uniform(1.5 * np.pi, 4.5 * np.pi, 6000), rng.uniform(0, 20, 6000)
    sheet = np.stack([t * np.cos(t), h, t * np.sin(t)], axis=1)
    points = sheet @ np.linalg.qr(rng.normal(size=(64, 3)))[0].T
    estimate = intrinsic.two_nn(*intrinsic.two_nearest(points))
    assert estimate["dimension"] == pytest.approx(2.0, abs=0.2)
    _, _, cumulative = intrinsic.pca_spectrum(points)
    assert intrinsic.components_for(cumulative, 0.99) == 3


def test_two_nn_formulas():
    """The MLE is (n - 1) / sum(log mu); the fit is least squares through the origin on the 90 % smallest mu."""
    rng = np.random.default_rng(4)
    r1 = rng.uniform(0.5, 1.0, 1000)
    r2 = r1 * (1 + rng.pareto(3.0, 1000))
    estimate = intrinsic.two_nn(r1, r2)
    mu = np.sort(r2 / r1)
    assert estimate["dimension_mle"] == pytest.approx(999 / np.log(mu).sum())
    kept = 900
    x = np.log(mu[:kept])[:, None]
    y = -np.log(1 - np.arange(1, kept + 1) / 1000)
    slope = np.linalg.lstsq(x, y, rcond=None)[0][0]
    assert estimate["dimension"] == pytest.approx(slope)
    assert estimate["dimension"] == pytest.approx(3.0, abs=0.3)


def test_duplicates_are_dropped_before_two_nn():
    """Quantised vectors repeat: distinct() keeps one of each, so no nearest neighbour is at distance zero."""
    points = np.round(embedded(3000, 3, seed=5) * 4) / 4  # a coarse quantisation: many repeats
    unique, dropped = intrinsic.distinct(points)
    assert dropped == len(points) - len({tuple(p) for p in points}) > 0
    r1, r2 = intrinsic.two_nearest(unique)
    assert (r1 > 0).all()
    zero = intrinsic.two_nn(np.r_[r1, 0.0, 0.0], np.r_[r2, 1.0, 2.0])
    assert zero["zero_distances"] == 2 and zero["points"] == len(unique)


def test_two_nn_needs_enough_points_and_spread():
    with pytest.raises(GeoEmbedError) as info:
        intrinsic.two_nn(np.ones(5), np.full(5, 2.0))
    assert "at least" in assert_one_line(info.value)
    with pytest.raises(GeoEmbedError) as info:
        intrinsic.two_nn(np.ones(50), np.ones(50))
    assert_one_line(info.value)
    with pytest.raises(GeoEmbedError):
        intrinsic.two_nearest(np.zeros((2, 3)))


def test_plot_html_has_the_spectrum_and_the_fit_as_svg():
    points = embedded(2000, 4, ambient=16)
    _, ratios, cumulative = intrinsic.pca_spectrum(points)
    levels = {level: intrinsic.components_for(cumulative, level) for level in intrinsic.VARIANCE_LEVELS}
    estimate = intrinsic.two_nn(*intrinsic.two_nearest(points))
    page = intrinsic.plot_html("Intrinsic <dim>", ratios, cumulative, levels, estimate, ["a note & more"])
    assert page.count("<svg") == 2 and page.count("</svg>") == 2
    assert "Intrinsic &lt;dim&gt;" in page and "a note &amp; more" in page
    assert page.count("<rect x=") >= 16, "one bar per component shown, plus the frames"
    assert f"{estimate['dimension']:.2f}" in page and f"{estimate['dimension_mle']:.2f}" in page
    for level, count in levels.items():
        assert f"<td class='l'>{int(round(level * 100))} % of the variance</td><td>{count}</td>" in page
