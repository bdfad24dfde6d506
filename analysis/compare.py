"""Which of two embedding products separates the classes of a labelled layer better, over one extent.

Both products are put on one grid (embedding-aware: aggregate onto a coarser grid, nearest onto a finer one),
labelled samples are taken at the same pixels of both (pixels valid in both), and each product is cross-validated
with the same spatially blocked folds, so the two accuracies differ only by the embeddings. McNemar's exact
test on the paired per-sample outcomes says whether the difference is more than chance.
"""

import html
import math

import numpy as np

from ..loaders.errors import GeoEmbedError
from ..loaders.model import EmbeddingBlock, EmbeddingRaster
from ..loaders.raster.grid import grid_from_bounds, same_crs, transform_bounds
from .change import same_grid
from .classify import cross_validate, metrics
from .regions import polygon_pixels
from .resample import AggregateRaster, coarser, nearest
from .sampling import sample

SIGNIFICANCE = 0.05


def common_grid(first, second, resolution=None):
    """The grid both products go on: the first's grid (or its CRS and origin with pixels of `resolution`),
    cut to the area both cover."""
    a = first.grid
    try:
        other = transform_bounds(second.grid.crs, a.crs, second.grid.bounds)
    except GeoEmbedError:
        other = None
    if other is not None:
        box = (max(a.bounds[0], other[0]), max(a.bounds[1], other[1]), min(a.bounds[2], other[2]), min(a.bounds[3], other[3]))
    if other is None or box[0] >= box[2] or box[1] >= box[3]:
        raise GeoEmbedError("INPUT and INPUT_2 do not overlap; give two products over the same area.")
    if resolution is None:
        if tuple(box) == tuple(a.bounds):
            return a
        return grid_from_bounds(a.crs, box, a.res_x, a.res_y, anchor=(a.x0, a.y0))
    if not resolution > 0:
        raise GeoEmbedError(f"RESOLUTION must be greater than 0, got {resolution:g}.")
    return grid_from_bounds(a.crs, box, resolution, anchor=(a.x0, a.y0))


def on_grid(raster, grid):
    """(the raster on grid, how): 'none' when grid is its own pixels (or a cut of them), 'aggregate' when grid is
    coarser, else 'nearest'."""
    if same_grid(raster.grid, grid):
        return raster, "none"
    if _same_lattice(raster.grid, grid):
        return nearest(raster, grid), "none"  # whole pixels copied: a window of the raster
    if coarser(raster, grid):
        return AggregateRaster(raster, grid), "aggregate"
    return nearest(raster, grid), "nearest"


def _same_lattice(src, grid, tolerance=1e-6):
    """True when grid's pixels are pixels of src (same CRS and pixel size, origin whole pixels away)."""
    if not same_crs(src.crs, grid.crs) or abs(src.res_x - grid.res_x) > tolerance * src.res_x:
        return False
    if abs(src.res_y - grid.res_y) > tolerance * src.res_y:
        return False
    cols, rows = (grid.x0 - src.x0) / src.res_x, (src.y0 - grid.y0) / src.res_y
    return abs(cols - round(cols)) <= tolerance and abs(rows - round(rows)) <= tolerance


class PairedRaster(EmbeddingRaster):
    """Two rasters on one grid seen as one: the first's bands then the second's, valid where both are valid."""

    def __init__(self, first, second):
        if not same_grid(first.grid, second.grid):
            raise GeoEmbedError("Both products must be on one grid first (compare.on_grid).")
        self.first, self.second = first, second
        self.grid = first.grid
        self.split = first.band_count
        self.band_names = tuple(f"1:{n}" for n in first.band_names) + tuple(f"2:{n}" for n in second.band_names)
        self.provenance = first.provenance

    def read(self, window):
        a, b = self.first.read(window), self.second.read(window)
        return EmbeddingBlock(np.concatenate([a.values, b.values]), a.valid & b.valid)

    def close(self):
        self.first.close()
        self.second.close()


def paired_samples(paired, geometries, labels, max_pixels=2000):
    """(features of the first, features of the second, labels, xs, ys) at every pixel valid in both.

    geometries: ("point", (x, y)) or ("polygon", rings) in the grid's CRS, with one label each; a polygon gives
    its pixel centres (at most max_pixels, a deterministic random subset)."""
    values, out_labels, xs, ys = [], [], [], []
    points = [(g[1], label) for g, label in zip(geometries, labels) if g[0] == "point"]
    if points:
        px = np.array([p[0][0] for p in points], dtype=np.float64)
        py = np.array([p[0][1] for p in points], dtype=np.float64)
        sampled, valid = sample(paired, px, py)
        values.append(sampled[valid])
        out_labels.append(np.array([p[1] for p in points], dtype=np.int64)[valid])
        xs.append(px[valid])
        ys.append(py[valid])
    grid = paired.grid
    for seed, ((kind, rings), label) in enumerate(zip(geometries, labels)):
        if kind != "polygon":
            continue
        pixels, cols, rows = polygon_pixels(paired, rings, max_pixels, seed)
        values.append(pixels)
        out_labels.append(np.full(len(pixels), label, dtype=np.int64))
        xs.append(grid.x0 + (cols + 0.5) * grid.res_x)
        ys.append(grid.y0 - (rows + 0.5) * grid.res_y)
    if not values:
        return np.zeros((0, paired.split)), np.zeros((0, paired.band_count - paired.split)), np.zeros(0, np.int64), [], []
    features = np.concatenate(values)
    return (
        features[:, : paired.split],
        features[:, paired.split :],
        np.concatenate(out_labels),
        np.concatenate(xs),
        np.concatenate(ys),
    )


def evaluate(features_list, labels, groups, method, classes):
    """Blocked CV of each feature set with the same folds: metrics() plus macro F1 and the predictions."""
    results = []
    for features in features_list:
        predicted = cross_validate(features, labels, groups, method)
        if predicted is None:
            raise GeoEmbedError(
                "The labelled samples fall in a single spatial block; spread TRAINING over a larger area to cross-validate."
            )
        result = metrics(labels, predicted, classes)
        result["macro_f1"] = float(np.mean(result["f1"]))
        result["predicted"] = predicted
        results.append(result)
    return results


def mcnemar(truth, first, second):
    """(samples only the first got right, samples only the second got right, exact two-sided p-value)."""
    right_a, right_b = np.asarray(first) == truth, np.asarray(second) == truth
    b, c = int((right_a & ~right_b).sum()), int((~right_a & right_b).sum())
    n = b + c
    if n == 0:
        return b, c, 1.0
    k = min(b, c)
    # P(X <= k) for X ~ Binomial(n, 1/2), summed in log space (n may be large)
    logs = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2.0) for i in range(k + 1)]
    top = max(logs)
    tail = math.exp(top) * sum(math.exp(v - top) for v in logs)
    return b, c, min(1.0, 2.0 * tail)


def verdict(names, dims, results, p_value, samples):
    """(index of the product to use or None, the answer in one or two plain sentences)."""
    f1 = [r["macro_f1"] for r in results]
    acc = [r["accuracy"] for r in results]
    lead_f1 = int(np.argmax(f1)) if f1[0] != f1[1] else None
    lead_acc = int(np.argmax(acc)) if acc[0] != acc[1] else None
    figures = "; ".join(f"{names[i]}: macro F1 {f1[i]:.3f}, accuracy {100 * acc[i]:.1f} %" for i in range(2))
    if lead_f1 is not None and lead_acc is not None and lead_f1 != lead_acc:
        return None, (
            f"No clear winner: {names[lead_acc]} has the higher accuracy but {names[lead_f1]} the higher macro F1 "
            f"(it does better on the smaller classes). {figures}. Choose by which matters more to you."
        )
    lead = lead_f1 if lead_f1 is not None else lead_acc
    if lead is not None and p_value < SIGNIFICANCE:
        return lead, (
            f"Use {names[lead]} here: it separates these classes better. {figures}. The difference is more than "
            f"chance (McNemar p = {p_value:.3g} on the same {samples} samples and folds)."
        )
    smaller = ""
    if dims[0] != dims[1]:
        small = int(np.argmin(dims))
        smaller = (
            f" {names[small]} has fewer dimensions ({dims[small]} vs {dims[1 - small]}), so it is cheaper to store and process."
        )
    return None, (
        f"No clear winner here: both separate these classes about equally well. {figures}. The difference could be "
        f"chance (McNemar p = {p_value:.3g} on the same {samples} samples and folds): either will do.{smaller}"
    )


def compare_html(title, names, details, class_names, counts, results, answer, notes):
    """A self-contained page: the answer, then accuracy, macro F1 and per-class F1 side by side, sample counts."""
    esc = html.escape
    best = [r["macro_f1"] for r in results]
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{esc(title)}</title><style>body{{font-family:sans-serif}}table{{border-collapse:collapse}}"
        "td,th{border:1px solid #bbb;padding:3px 6px;text-align:right}th{background:#eee}td.l,th.l{text-align:left}"
        "td.b{background:#dff0d8;font-weight:bold}p.answer{font-size:120%;border-left:4px solid #4c78a8;padding-left:8px}"
        "</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        f"<p class='answer'>{esc(answer)}</p>",
        f"<table><tr><th class='l'></th><th>{esc(names[0])}</th><th>{esc(names[1])}</th></tr>",
    ]
    for label, values in details:
        parts.append(f"<tr><td class='l'>{esc(label)}</td>" + "".join(f"<td>{esc(str(v))}</td>" for v in values) + "</tr>")

    def row(label, values, fmt):
        top = max(values)
        cells = "".join(f"<td class='{'b' if v == top and values[0] != values[1] else ''}'>{fmt(v)}</td>" for v in values)
        return f"<tr><td class='l'>{esc(label)}</td>{cells}</tr>"

    parts.append(row("Overall accuracy", [r["accuracy"] for r in results], lambda v: f"{100 * v:.1f} %"))
    parts.append(row("Macro F1", best, lambda v: f"{v:.3f}"))
    for i, name in enumerate(class_names):
        parts.append(row(f"F1 {name}", [float(r["f1"][i]) for r in results], lambda v: f"{v:.3f}"))
    parts.append("</table><h3>Samples per class (the same pixels for both products)</h3>")
    parts.append("<table><tr><th class='l'>Class</th><th>Samples</th></tr>")
    parts.extend(f"<tr><td class='l'>{esc(name)}</td><td>{int(counts[i])}</td></tr>" for i, name in enumerate(class_names))
    parts.append(f"<tr><td class='l'><b>Total</b></td><td><b>{int(np.sum(counts))}</b></td></tr></table>")
    parts.extend(f"<p>{esc(note)}</p>" for note in notes)
    parts.append("</body></html>")
    return "\n".join(parts)
