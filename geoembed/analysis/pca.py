"""Principal components of embedding vectors and their display as an RGB composite."""

import numpy as np


def fit_pca(samples, components=3):
    """(mean, axes) of an (n, dims) sample: axes is (components, dims), strongest first.

    Each axis's sign is fixed so that its largest loading is positive, so refits on similar
    data give the same colours.
    """
    samples = np.asarray(samples, dtype=np.float64)
    mean = samples.mean(axis=0)
    centred = samples - mean
    covariance = centred.T @ centred / max(len(samples) - 1, 1)
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    axes = eigenvectors[:, np.argsort(eigenvalues)[::-1][:components]].T
    signs = np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)])
    return mean, axes * signs[:, np.newaxis]


def project(values, mean, axes):
    """Project (dims, ...) vectors onto the axes: (components, ...)."""
    flat = values.reshape(values.shape[0], -1).astype(np.float64)
    projected = axes @ (flat - mean[:, np.newaxis])
    return projected.reshape((len(axes),) + values.shape[1:])


def robust_stretch(channels, valid, low=2.0, high=98.0):
    """uint8 channels scaled between the low/high percentiles of the valid pixels; invalid pixels are 0."""
    out = np.zeros(channels.shape, dtype=np.uint8)
    if not valid.any():
        return out
    for index, channel in enumerate(channels):
        lo, hi = np.percentile(channel[valid], [low, high])
        scaled = np.clip((channel - lo) / ((hi - lo) or 1.0), 0.0, 1.0)
        out[index] = np.where(valid, np.round(1 + scaled * 254), 0).astype(np.uint8)
    return out


def pca_rgb(values, valid, max_samples=50_000, seed=0):
    """False-colour (3, rows, cols) uint8 of the first three principal components of (dims, rows, cols)."""
    pixels = np.flatnonzero(valid)
    if pixels.size == 0:
        return np.zeros((3,) + valid.shape, dtype=np.uint8)
    if pixels.size > max_samples:
        pixels = np.sort(np.random.default_rng(seed).choice(pixels, max_samples, replace=False))
    flat = values.reshape(values.shape[0], -1)
    mean, axes = fit_pca(flat[:, pixels].T, components=min(3, values.shape[0]))
    channels = project(values, mean, axes)
    if len(channels) < 3:
        channels = np.concatenate([channels, np.repeat(channels[-1:], 3 - len(channels), axis=0)])
    return robust_stretch(channels, valid)
