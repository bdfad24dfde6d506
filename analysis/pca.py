"""Principal components of embedding vectors and their display as an RGB composite.

Two uses: pca_rgb() fits and stretches one in-memory array (the load quicklook); PcaModel is a
projection fitted on a block-wise sample of a whole raster (fit_raster), applied block by block,
saved as JSON and reused so that the same vector gets the same colour on every tile and year.
"""

import json
import platform

import numpy as np

from .. import __about__
from ..loaders.errors import GeoEmbedError
from ..loaders.model import EmbeddingBlock
from ..loaders.remote.locations import atomic_file
from .blas import matmul
from .pixel_sample import sample_pixels

PCA_FORMAT = "geoembed-pca-1"
PERCENTILES = (2.0, 98.0)


def fit_pca(samples, components=3):
    """(mean, axes) of an (n, dims) sample: axes is (components, dims), strongest first.

    Each axis's sign is fixed so that its largest loading is positive, so refits on similar
    data give the same colours.
    """
    samples = np.asarray(samples, dtype=np.float64)
    mean = samples.mean(axis=0)
    centred = samples - mean
    covariance = matmul(centred.T, centred) / max(len(samples) - 1, 1)
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    axes = eigenvectors[:, np.argsort(eigenvalues)[::-1][:components]].T
    signs = np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)])
    return mean, axes * signs[:, np.newaxis]


def project(values, mean, axes):
    """Project (dims, ...) vectors onto the axes: (components, ...)."""
    flat = values.reshape(values.shape[0], -1).astype(np.float64)
    projected = matmul(axes, flat - mean[:, np.newaxis])
    return projected.reshape((len(axes),) + values.shape[1:])


def stretch(channels, valid, lows, highs):
    """uint8 channels: lows[i]..highs[i] mapped linearly onto 1..255 (clipped), invalid pixels 0."""
    out = np.zeros(channels.shape, dtype=np.uint8)
    for index, (channel, lo, hi) in enumerate(zip(channels, lows, highs)):
        scaled = np.clip((channel - lo) / ((hi - lo) or 1.0), 0.0, 1.0)
        out[index] = np.where(valid, np.round(1 + scaled * 254), 0).astype(np.uint8)
    return out


def robust_stretch(channels, valid, low=PERCENTILES[0], high=PERCENTILES[1]):
    """uint8 channels scaled between the low/high percentiles of the valid pixels; invalid pixels are 0."""
    if not valid.any():
        return np.zeros(channels.shape, dtype=np.uint8)
    limits = [np.percentile(channel[valid], [low, high]) for channel in channels]
    return stretch(channels, valid, [lo for lo, _ in limits], [hi for _, hi in limits])


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


class PcaModel:
    """Up to three principal axes and, per axis, the stretch limits that map it onto bytes 1..255.

    rgb channel c = 1 + round(254 * clip(((x - mean) . axes[c] - lows[c]) / (highs[c] - lows[c]), 0, 1)); with
    fewer than three axes the last one is repeated. Nothing depends on the raster it is applied to, so a
    vector gets the same colour wherever it is.
    """

    CHUNK = 65536  # pixels projected at once (64 bands: 32 MiB of float64)

    def __init__(
        self,
        mean,
        axes,
        lows,
        highs,
        band_names,
        product,
        percentiles=PERCENTILES,
        variances=None,
        total_variance=None,
        sample_size=0,
        versions=None,
    ):
        self.mean = np.asarray(mean, dtype=np.float64)
        self.axes = np.asarray(axes, dtype=np.float64)
        self.lows = np.asarray(lows, dtype=np.float64)
        self.highs = np.asarray(highs, dtype=np.float64)
        self.band_names = tuple(band_names)
        self.product = product
        self.percentiles = tuple(float(p) for p in percentiles)
        self.variances = None if variances is None else np.asarray(variances, dtype=np.float64)
        self.total_variance = total_variance
        self.sample_size = int(sample_size)
        self.versions = versions or {
            "geoembed": __about__.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        }

    def check_bands(self, band_names, what="INPUT"):
        if tuple(band_names) != self.band_names:
            raise GeoEmbedError(
                f"MODEL_IN was fitted on {len(self.band_names)} bands ({_span(self.band_names)}, {self.product}) but "
                f"{what} has {len(band_names)} ({_span(band_names)}); reuse a PCA model only on rasters of the same product."
            )

    def channels(self, vectors):
        """(3, n) float64 projections of (dims, n) vectors onto the axes (the last axis repeated if fewer than 3)."""
        projected = matmul(self.axes, np.asarray(vectors, dtype=np.float64) - self.mean[:, np.newaxis])
        return projected[[min(c, len(self.axes) - 1) for c in range(3)]]

    def limits(self):
        """(lows, highs) of the three rgb channels."""
        index = [min(c, len(self.axes) - 1) for c in range(3)]
        return self.lows[index], self.highs[index]

    def rgb(self, values, valid):
        """(3, rows, cols) uint8 for (dims, rows, cols) values: 1..255 on valid pixels, 0 elsewhere."""
        out = np.zeros((3,) + valid.shape, dtype=np.uint8)
        vectors = values[:, valid]
        colours = np.empty((3, vectors.shape[1]), dtype=np.uint8)
        lows, highs = self.limits()
        for start in range(0, vectors.shape[1], self.CHUNK):
            chunk = vectors[:, start : start + self.CHUNK]
            colours[:, start : start + chunk.shape[1]] = stretch(self.channels(chunk), True, lows, highs)
        out[:, valid] = colours
        return out

    def produce(self, block):
        """The EmbeddingBlock of the RGB composite of an EmbeddingBlock (for write_rasters)."""
        return EmbeddingBlock(self.rgb(block.values, block.valid), block.valid)

    def explained(self):
        """Share of the sample's total variance along each axis, or None if unknown."""
        if self.variances is None or self.total_variance is None:
            return None
        if self.total_variance <= 0:  # all sampled vectors equal
            return np.zeros_like(self.variances)
        return self.variances / self.total_variance

    def to_dict(self):
        return {
            "format": PCA_FORMAT,
            "description": "GeoEmbed PCA false colour: channel c = 1 + round(254 * clip(((x - mean) . axes[c] - "
            "stretch.low[c]) / (stretch.high[c] - stretch.low[c]), 0, 1)); 0 = nodata",
            "product": self.product,
            "band_names": list(self.band_names),
            "mean": self.mean.tolist(),
            "axes": self.axes.tolist(),
            "stretch": {"percentiles": list(self.percentiles), "low": self.lows.tolist(), "high": self.highs.tolist()},
            "explained_variance": None if self.variances is None else self.variances.tolist(),
            "total_variance": self.total_variance,
            "sample_size": self.sample_size,
            "versions": self.versions,
        }

    def save(self, path):
        """Write the model as JSON (atomically); floats round-trip exactly, so colours are reproduced exactly."""
        with atomic_file(path) as tmp, open(tmp, "w", encoding="utf-8") as out:
            json.dump(self.to_dict(), out, indent=1)
        return path

    @classmethod
    def from_dict(cls, payload):
        stretch_ = payload["stretch"]
        return cls(
            payload["mean"],
            payload["axes"],
            stretch_["low"],
            stretch_["high"],
            payload["band_names"],
            payload.get("product", "unknown"),
            stretch_.get("percentiles", PERCENTILES),
            payload.get("explained_variance"),
            payload.get("total_variance"),
            payload.get("sample_size", 0),
            payload.get("versions"),
        )


def load_model(path):
    """A PcaModel saved by geoembed:pca (OUTPUT_MODEL); any other file gives a one-line GeoEmbedError."""
    hint = "give a file saved by geoembed:pca OUTPUT_MODEL"
    try:
        with open(path, encoding="utf-8") as handle:
            payload = json.load(handle)
    except FileNotFoundError:
        raise GeoEmbedError(f"MODEL_IN {path} does not exist; {hint}.") from None
    except IsADirectoryError:
        raise GeoEmbedError(f"MODEL_IN {path} is a folder; {hint}.") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise GeoEmbedError(f"MODEL_IN {path} is not a GeoEmbed PCA model ({type(exc).__name__}); {hint}.") from None
    if not isinstance(payload, dict) or payload.get("format") != PCA_FORMAT:
        raise GeoEmbedError(f"MODEL_IN {path} is not a GeoEmbed PCA model file; {hint}.")
    try:
        model = PcaModel.from_dict(payload)
        _check_shapes(model)
    except (KeyError, TypeError, ValueError) as exc:
        raise GeoEmbedError(f"MODEL_IN {path} is a damaged GeoEmbed PCA model ({exc}); {hint}.") from None
    return model


def _check_shapes(model):
    dims = len(model.band_names)
    components = len(model.axes)
    if model.axes.ndim != 2 or not 1 <= components <= 3 or model.axes.shape[1] != dims:
        raise ValueError(f"axes of shape {model.axes.shape} for {dims} bands")
    if model.mean.shape != (dims,):
        raise ValueError(f"mean of shape {model.mean.shape} for {dims} bands")
    if model.lows.shape != (components,) or model.highs.shape != (components,):
        raise ValueError("stretch limits do not match the axes")
    numbers = np.concatenate([model.mean, model.axes.ravel(), model.lows, model.highs])
    if not np.isfinite(numbers).all():
        raise ValueError("non-finite numbers")


def fit_model(samples, band_names, product, percentiles=PERCENTILES):
    """A PcaModel fitted on (n, dims) sample vectors: axes from fit_pca, stretch limits from the sample's projections."""
    samples = np.asarray(samples, dtype=np.float64)
    mean, axes = fit_pca(samples, components=min(3, samples.shape[1]))
    flat = np.zeros(len(axes))
    model = PcaModel(mean, axes, flat, flat, band_names, product, percentiles, sample_size=len(samples))
    projected = matmul(model.axes, samples.T - model.mean[:, np.newaxis])  # (components, n)
    model.lows, model.highs = np.percentile(projected, list(percentiles), axis=1)
    ddof = 1 if len(samples) > 1 else 0
    model.variances = projected.var(axis=1, ddof=ddof)
    model.total_variance = float(samples.var(axis=0, ddof=ddof).sum())
    return model


def fit_raster(raster, sample_size=50_000, seed=0, progress=None, is_cancelled=None):
    """(PcaModel, valid pixel count): the projection and stretch fitted on a uniform block-wise sample of valid pixels."""
    samples, valid_count = sample_pixels(raster, sample_size, seed, progress=progress, is_cancelled=is_cancelled)
    if valid_count == 0:
        raise GeoEmbedError("INPUT has no valid pixel (all nodata); there is nothing to fit a PCA on.")
    product = getattr(raster.provenance, "product", "unknown")
    return fit_model(samples, raster.band_names, product), valid_count


def _span(names):
    names = list(names)
    if not names:
        return "no bands"
    return names[0] if len(names) == 1 else f"{names[0]}..{names[-1]}"
