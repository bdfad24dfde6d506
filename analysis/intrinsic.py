"""How many dimensions an embedding layer really uses: PCA explained variance and the TwoNN estimator.

TwoNN (Facco, d'Errico, Rodriguez and Laio, Scientific Reports 7, 12140, 2017): for each point, mu = r2 / r1,
the ratio of the distances to its second and first nearest neighbours, follows a Pareto law with shape d (the
intrinsic dimension) whatever the density, as long as it is locally constant. d is fitted by the straight line
through the origin of -log(1 - F(mu)) against log(mu), leaving out the 10 % largest mu (Facco et al.'s
recommendation), and by maximum likelihood. Duplicate vectors (r1 = 0, common with quantised products) make
mu undefined: they are dropped first, and the caller says how many. The sample itself comes from
pixel_sample.sample_pixels (uniform over the valid pixels, block by block).
"""

import html
import math

import numpy as np

from ..loaders.errors import Cancelled, GeoEmbedError
from .blas import matmul

DEFAULT_SAMPLE = 20_000
MIN_POINTS = 20  # distinct vectors needed for a TwoNN estimate
DISCARD = 0.1  # fraction of the largest mu left out of the linear fit
DISTANCE_BYTES = 16 * 2**20  # float64 distance matrix rows computed at once (bounded memory)
VARIANCE_LEVELS = (0.90, 0.95, 0.99)


def pca_spectrum(samples):
    """(variances, ratios, cumulative) of the principal components of (n, dims) samples, strongest first."""
    samples = np.asarray(samples, dtype=np.float64)
    if len(samples) < 2:
        raise GeoEmbedError("INPUT has fewer than two valid pixels; a spectrum needs more.")
    centred = samples - samples.mean(axis=0)
    covariance = matmul(centred.T, centred) / (len(samples) - 1)
    variances = np.clip(np.linalg.eigvalsh(covariance)[::-1], 0.0, None)
    total = variances.sum()
    if total <= 0:
        raise GeoEmbedError("All sampled vectors of INPUT are identical; there is no spectrum to measure.")
    ratios = variances / total
    return variances, ratios, np.cumsum(ratios)


def components_for(cumulative, fraction):
    """The fewest leading components whose cumulative explained variance reaches fraction."""
    return int(np.argmax(np.asarray(cumulative) >= fraction - 1e-12)) + 1


def distinct(samples):
    """(unique rows, how many duplicates were dropped)."""
    unique = np.unique(np.asarray(samples, dtype=np.float64), axis=0)
    return unique, len(samples) - len(unique)


def two_nearest(points, progress=None, is_cancelled=None, max_bytes=DISTANCE_BYTES):
    """(r1, r2): Euclidean distances from each point to its nearest and second nearest other point.

    Brute force, a band of rows at a time (at most max_bytes of float64 distances in memory). Neighbours are
    chosen on squared distances from dot products, then their distances are recomputed exactly."""
    points = np.asarray(points, dtype=np.float64)
    n = len(points)
    if n < 3:
        raise GeoEmbedError("TwoNN needs at least three distinct vectors.")
    squares = np.einsum("ij,ij->i", points, points)
    rows = max(1, min(n, max_bytes // (8 * n)))
    neighbours = np.empty((n, 2), dtype=np.int64)
    for start in range(0, n, rows):
        if is_cancelled and is_cancelled():
            raise Cancelled()
        stop = min(n, start + rows)
        # |x_i - x_j|^2 minus |x_i|^2, which is the same along a row and does not change the ranking
        d2 = matmul(points[start:stop], points.T)
        d2 *= -2.0
        d2 += squares[None, :]
        d2[np.arange(stop - start), np.arange(start, stop)] = np.inf  # not its own neighbour
        local = np.arange(stop - start)
        first = d2.argmin(axis=1)  # two argmins are much faster than a partition of every row
        d2[local, first] = np.inf
        neighbours[start:stop, 0] = first
        neighbours[start:stop, 1] = d2.argmin(axis=1)
        if progress:
            progress(stop / n)
    r1 = np.linalg.norm(points - points[neighbours[:, 0]], axis=1)
    r2 = np.linalg.norm(points - points[neighbours[:, 1]], axis=1)
    swap = r1 > r2  # float noise in the dot products can only swap near-ties
    r1[swap], r2[swap] = r2[swap], r1[swap].copy()
    return r1, r2


def two_nn(r1, r2, discard=DISCARD):
    """TwoNN estimate from the two neighbour distances: dict with dimension (linear fit), dimension_mle,
    points used, zero distances dropped and the fit's (log mu, -log(1 - F)) points."""
    r1, r2 = np.asarray(r1, dtype=np.float64), np.asarray(r2, dtype=np.float64)
    usable = r1 > 0
    mu = np.sort(r2[usable] / r1[usable])
    n = len(mu)
    if n < MIN_POINTS:
        raise GeoEmbedError(f"Only {n} distinct vectors could be used; TwoNN needs at least {MIN_POINTS}.")
    logs = np.log(mu)
    if logs.sum() <= 0:
        raise GeoEmbedError("Every point is as far from its second neighbour as from its first; TwoNN cannot be fitted.")
    empirical = np.arange(1, n + 1) / n  # F(mu_(i)) = i / n
    kept = max(2, int(math.floor(n * (1.0 - discard))))
    x, y = logs[:kept], -np.log(1.0 - empirical[:kept])
    return {
        "dimension": float((x * y).sum() / (x * x).sum()),
        "dimension_mle": float((n - 1) / logs.sum()),
        "points": n,
        "zero_distances": int((~usable).sum()),
        "fit_x": x,
        "fit_y": y,
    }


# --- the HTML plot --------------------------------------------------------------------------------------------


def plot_html(title, ratios, cumulative, levels, estimate, notes):
    """A self-contained page: the explained variance spectrum and the TwoNN fit as inline SVG (no matplotlib)."""
    esc = html.escape
    shown = min(len(ratios), max(20, int(max(levels.values()) * 1.5)))
    rows = "".join(f"<tr><td class='l'>{int(round(k * 100))} % of the variance</td><td>{v}</td></tr>" for k, v in levels.items())
    rows += f"<tr><td class='l'>TwoNN intrinsic dimension (linear fit)</td><td>{estimate['dimension']:.2f}</td></tr>"
    rows += f"<tr><td class='l'>TwoNN intrinsic dimension (maximum likelihood)</td><td>{estimate['dimension_mle']:.2f}</td></tr>"
    return "\n".join(
        [
            "<!DOCTYPE html><html><head><meta charset='utf-8'>",
            f"<title>{esc(title)}</title><style>body{{font-family:sans-serif}}table{{border-collapse:collapse}}"
            "td,th{border:1px solid #bbb;padding:3px 6px;text-align:right}td.l{text-align:left}"
            "svg text{font-family:sans-serif;font-size:11px}</style></head><body>",
            f"<h1>{esc(title)}</h1>",
            f"<table><tr><th class='l'>Components needed for</th><th>Count</th></tr>{rows}</table>",
            "".join(f"<p>{esc(note)}</p>" for note in notes),
            f"<h2>Explained variance (first {shown} of {len(ratios)} components)</h2>",
            spectrum_svg(ratios[:shown], cumulative[:shown], levels),
            "<h2>TwoNN fit</h2>",
            "<p>Each point is one sampled vector: x = log(r2 / r1), y = -log(1 - F); the slope of the line through the "
            "origin is the intrinsic dimension (the 10 % largest ratios are left out of the fit, as Facco et al. 2017 "
            "recommend).</p>",
            two_nn_svg(estimate),
            "</body></html>",
        ]
    )


WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 640, 320, 56, 56, 16, 40


def _frame(x_label, y_label, y_ticks, right_label=None, right_ticks=()):
    """Axes, ticks and labels of a plot area; ticks are (value in 0..1 of the height, text)."""
    plot_h = HEIGHT - TOP - BOTTOM
    out = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' height='{HEIGHT}' viewBox='0 0 {WIDTH} {HEIGHT}'>",
        f"<rect x='{LEFT}' y='{TOP}' width='{WIDTH - LEFT - RIGHT}' height='{plot_h}' fill='none' stroke='#444'/>",
        f"<text x='{(LEFT + WIDTH - RIGHT) / 2}' y='{HEIGHT - 6}' text-anchor='middle'>{html.escape(x_label)}</text>",
        f"<text transform='translate(14,{TOP + plot_h / 2}) rotate(-90)' text-anchor='middle'>{html.escape(y_label)}</text>",
    ]
    for fraction, text in y_ticks:
        y = TOP + plot_h * (1 - fraction)
        out.append(f"<text x='{LEFT - 4}' y='{y + 4:.1f}' text-anchor='end'>{html.escape(text)}</text>")
    for fraction, text in right_ticks:
        y = TOP + plot_h * (1 - fraction)
        out.append(f"<text x='{WIDTH - RIGHT + 4}' y='{y + 4:.1f}'>{html.escape(text)}</text>")
    if right_label:
        out.append(
            f"<text transform='translate({WIDTH - 10},{TOP + plot_h / 2}) rotate(90)' text-anchor='middle'>"
            f"{html.escape(right_label)}</text>"
        )
    return out


def spectrum_svg(ratios, cumulative, levels):
    """Bars: explained variance ratio per component; line: cumulative (right axis); dashes at the levels."""
    n = len(ratios)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top = float(max(ratios.max(), 1e-12))
    ticks = [(f, f"{100 * top * f:.1f} %") for f in (0, 0.5, 1)]
    out = _frame("component", "explained variance", ticks, "cumulative", [(f, f"{100 * f:.0f} %") for f in (0, 0.5, 1)])
    step = plot_w / n
    for i, ratio in enumerate(ratios):
        h = plot_h * ratio / top
        out.append(
            f"<rect x='{LEFT + i * step + 0.1 * step:.1f}' y='{TOP + plot_h - h:.1f}' width='{0.8 * step:.2f}' "
            f"height='{h:.1f}' fill='#4c78a8'><title>component {i + 1}: {100 * ratio:.2f} %</title></rect>"
        )
    points = " ".join(f"{LEFT + (i + 0.5) * step:.1f},{TOP + plot_h * (1 - c):.1f}" for i, c in enumerate(cumulative))
    out.append(f"<polyline points='{points}' fill='none' stroke='#e45756' stroke-width='2'/>")
    for level, count in levels.items():
        y = TOP + plot_h * (1 - level)
        out.append(f"<line x1='{LEFT}' x2='{LEFT + plot_w}' y1='{y:.1f}' y2='{y:.1f}' stroke='#999' stroke-dasharray='4 3'/>")
        if count <= n:
            x = LEFT + (count - 0.5) * step
            out.append(f"<circle cx='{x:.1f}' cy='{y:.1f}' r='3' fill='#e45756'/>")
            out.append(f"<text x='{x + 5:.1f}' y='{y + 12:.1f}'>{int(round(level * 100))} %: {count}</text>")
    for i in range(0, n, max(1, n // 10)):
        out.append(f"<text x='{LEFT + (i + 0.5) * step:.1f}' y='{TOP + plot_h + 14}' text-anchor='middle'>{i + 1}</text>")
    out.append("</svg>")
    return "".join(out)


def two_nn_svg(estimate, max_points=600):
    """Scatter of the fit's points (a regular subset) and the fitted line."""
    x, y = estimate["fit_x"], estimate["fit_y"]
    if len(x) > max_points:
        pick = np.linspace(0, len(x) - 1, max_points).astype(int)
        x, y = x[pick], y[pick]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    x_max = float(max(x.max(), 1e-12))
    y_max = float(max(y.max(), estimate["dimension"] * x_max, 1e-12))
    out = _frame("log(r2 / r1)", "-log(1 - F)", [(f, f"{y_max * f:.2f}") for f in (0, 0.5, 1)])
    for f in (0, 0.5, 1):
        out.append(f"<text x='{LEFT + plot_w * f:.1f}' y='{TOP + plot_h + 14}' text-anchor='middle'>{x_max * f:.2f}</text>")
    out.extend(
        f"<circle cx='{LEFT + plot_w * a / x_max:.1f}' cy='{TOP + plot_h * (1 - b / y_max):.1f}' r='1.6' fill='#4c78a8'/>"
        for a, b in zip(x, y)
    )
    end_y = estimate["dimension"] * x_max
    out.append(
        f"<line x1='{LEFT}' y1='{TOP + plot_h}' x2='{LEFT + plot_w}' y2='{TOP + plot_h * (1 - end_y / y_max):.1f}' "
        f"stroke='#e45756' stroke-width='2'/>"
    )
    out.append(f"<text x='{LEFT + 8}' y='{TOP + 16}'>slope d = {estimate['dimension']:.2f}</text></svg>")
    return "".join(out)
