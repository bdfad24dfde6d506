"""PCA quicklook maths: dominant axes, deterministic signs, uint8 composite with 0 only for invalid pixels."""

import numpy as np
import pytest

from geoembed.analysis.pca import fit_pca, pca_rgb, project


def _synthetic(n=4000, dims=16, seed=1):
    """Samples with variances 25, 4, 1 along three random orthonormal axes, plus small isotropic noise."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(dims, dims)))
    axes = basis[:, :3].T
    scores = rng.normal(size=(n, 3)) * np.array([5.0, 2.0, 1.0])
    mean = rng.normal(size=dims)
    samples = mean + scores @ axes + 0.05 * rng.normal(size=(n, dims))
    return samples, axes


def _svd_axes(samples, k):
    centred = samples - samples.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    axes = vt[:k]
    for axis in axes:  # the documented sign rule: the largest loading is positive
        if axis[np.abs(axis).argmax()] < 0:
            axis *= -1
    return axes


def test_fit_pca_matches_svd():
    samples, _ = _synthetic()
    mean, axes = fit_pca(samples, components=3)
    assert axes.shape == (3, 16)
    np.testing.assert_allclose(mean, samples.mean(axis=0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(axes, _svd_axes(samples, 3), atol=1e-8)
    np.testing.assert_allclose(axes @ axes.T, np.eye(3), atol=1e-10)


def test_fit_pca_recovers_the_dominant_axis():
    samples, true_axes = _synthetic()
    _, axes = fit_pca(samples, components=3)
    for found, true in zip(axes, true_axes):
        assert abs(found @ true) > 0.99  # same direction up to sign, strongest first


def test_signs_are_deterministic():
    samples, _ = _synthetic()
    _, axes = fit_pca(samples, components=3)
    for axis in axes:
        assert axis[np.abs(axis).argmax()] > 0
    rng = np.random.default_rng(5)
    _, shuffled = fit_pca(samples[rng.permutation(len(samples))], components=3)
    np.testing.assert_allclose(shuffled, axes, atol=1e-10)
    _, mirrored = fit_pca(-samples, components=3)  # the data flipped: the axes keep their signs
    np.testing.assert_allclose(mirrored, axes, atol=1e-10)


def test_project():
    samples, _ = _synthetic(n=50)
    mean, axes = fit_pca(samples, components=3)
    values = samples.T.reshape(16, 5, 10)  # (dims, rows, cols)
    projected = project(values, mean, axes)
    assert projected.shape == (3, 5, 10)
    expected = ((samples - mean) @ axes.T).T.reshape(3, 5, 10)
    np.testing.assert_allclose(projected, expected, atol=1e-10)


@pytest.mark.parametrize("dims", [64, 2])
def test_pca_rgb_is_uint8_with_zero_only_where_invalid(dims):
    rng = np.random.default_rng(2)
    rows, cols = 40, 50
    values = rng.normal(size=(dims, rows, cols)).astype(np.float32)
    valid = rng.random((rows, cols)) > 0.2
    values[:, ~valid] = -9999.0  # what GeoEmbed writes for nodata
    rgb = pca_rgb(values, valid)
    assert rgb.dtype == np.uint8 and rgb.shape == (3, rows, cols)
    assert (rgb[:, ~valid] == 0).all()
    assert (rgb[:, valid] >= 1).all()
    assert rgb[:, valid].max() == 255  # stretched over the full range
    # nodata values do not leak into the stretch: same picture with other fill values
    other = values.copy()
    other[:, ~valid] = 0.0
    np.testing.assert_array_equal(pca_rgb(other, valid), rgb)


def test_pca_rgb_first_channel_follows_the_first_component():
    rng = np.random.default_rng(4)
    rows, cols = 30, 30
    gradient = np.linspace(-1, 1, cols)[np.newaxis, :].repeat(rows, axis=0)
    direction = np.zeros(8)
    direction[3] = 1.0
    values = gradient[np.newaxis] * direction[:, np.newaxis, np.newaxis] * 10 + 0.01 * rng.normal(size=(8, rows, cols))
    rgb = pca_rgb(values, np.ones((rows, cols), dtype=bool))
    red = rgb[0].astype(int).mean(axis=0)
    assert np.all(np.diff(red) >= 0) and red[-1] - red[0] > 200  # positive loading on band 3: increases eastward


def test_pca_rgb_edge_cases():
    values = np.ones((64, 4, 4), dtype=np.float32)
    none_valid = np.zeros((4, 4), dtype=bool)
    assert (pca_rgb(values, none_valid) == 0).all()
    constant = pca_rgb(values, np.ones((4, 4), dtype=bool))  # no variance at all
    assert constant.dtype == np.uint8 and (constant >= 1).all()


def test_pca_rgb_subsampling_is_deterministic():
    rng = np.random.default_rng(9)
    values = rng.normal(size=(8, 100, 100))
    valid = np.ones((100, 100), dtype=bool)
    first = pca_rgb(values, valid, max_samples=500, seed=3)
    np.testing.assert_array_equal(first, pca_rgb(values, valid, max_samples=500, seed=3))
    assert (first >= 1).all()
