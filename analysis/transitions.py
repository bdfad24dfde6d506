"""Transitions between two class maps on one grid: the from -> to matrix (pixels and m²) and a from -> to map.

Two passes with bounded memory. Pass 1 reads both maps block by block and counts every (before, after) pair of raw
class values, with its area summed row by row (pixel areas per row: exact on geographic grids). The two maps' classes
are then matched by name (a class value without a name is named by its value), so two maps made with one model, or
with two models that share class names, line up. Pass 2 hands out, block by block, the index (1..k) of each pixel's
pair in the list of observed pairs, sorted by (from, to); 0 = nodata in either map.
"""

import html

import numpy as np

from ..loaders.errors import Cancelled, GeoEmbedError
from ..loaders.model import EmbeddingBlock
from ..loaders.raster.writer import BLOCK
from .change import area_text, pixel_areas_m2

VALUE_SPAN = 65536  # raw class values 0..65535: a (before, after) pair is before * VALUE_SPAN + after


class Transitions:
    """Pass 1 (count), the matched classes and matrices, then pass 2 (produce) for write_rasters."""

    def __init__(self, first, second, first_names=None, second_names=None, block=BLOCK):
        if (first.grid.width, first.grid.height) != (second.grid.width, second.grid.height):
            raise GeoEmbedError("INPUT_2 must be put on INPUT's grid first (analysis.resample.nearest).")
        self.first, self.second = first, second
        self.first_names, self.second_names = dict(first_names or {}), dict(second_names or {})
        self.grid = first.grid
        self.block = block
        self.areas = pixel_areas_m2(self.grid)
        self.valid_per_row = np.zeros(self.grid.height, dtype=np.int64)
        self._pairs = np.zeros(0, dtype=np.int64)  # sorted raw pair codes seen
        self._pixels = np.zeros(0, dtype=np.int64)
        self._m2 = np.zeros(0, dtype=np.float64)

    # --- pass 1 ---------------------------------------------------------------------------------

    def count(self, progress=None, is_cancelled=None):
        """Pass 1: pixels and area of every raw (before, after) pair; then the classes and matrices."""
        windows = list(self.grid.blocks(self.block))
        for done, window in enumerate(windows, start=1):
            if is_cancelled and is_cancelled():
                raise Cancelled()
            codes, rows, _ = self._pair_codes(window)
            self.valid_per_row[window.row : window.row + window.height] += np.bincount(rows, minlength=window.height)
            if codes.size:
                unique, inverse = np.unique(codes, return_inverse=True)
                inverse = inverse.ravel()
                pixels = np.bincount(inverse, minlength=len(unique))
                m2 = np.bincount(inverse, weights=self.areas[window.row + rows], minlength=len(unique))
                self._merge(unique, pixels, m2)
            if progress:
                progress(done / len(windows))
        self._match_classes()

    def _pair_codes(self, window):
        """(raw pair codes of the pixels valid in both maps, their rows in the window, the valid mask)."""
        a, b = self.first.read(window), self.second.read(window)
        valid = a.valid & b.valid
        before = _class_values(a.values[0][valid], self.first)
        after = _class_values(b.values[0][valid], self.second)
        rows = np.nonzero(valid)[0]
        return before * VALUE_SPAN + after, rows, valid

    def _merge(self, codes, pixels, m2):
        all_codes = np.concatenate([self._pairs, codes])
        unique, inverse = np.unique(all_codes, return_inverse=True)
        inverse = inverse.ravel()
        self._pixels = np.bincount(inverse, weights=np.concatenate([self._pixels, pixels]), minlength=len(unique))
        self._pixels = self._pixels.astype(np.int64)  # counts stay exact: far below 2**53
        self._m2 = np.bincount(inverse, weights=np.concatenate([self._m2, m2]), minlength=len(unique))
        self._pairs = unique

    def _match_classes(self):
        """Classes of both maps matched by name: INPUT's in value order, then INPUT_2's new ones; the matrices."""
        before_values = set(self.first_names) | set((self._pairs // VALUE_SPAN).tolist())
        after_values = set(self.second_names) | set((self._pairs % VALUE_SPAN).tolist())
        self.class_names, self.class_sources = [], []  # name, and (map 0 or 1, raw value) it was first found in
        index_of_name = {}
        lookups = []
        for source, (values, names) in enumerate(((before_values, self.first_names), (after_values, self.second_names))):
            lookup = {}
            for value in sorted(values):
                name = names.get(value, str(value))
                if name not in index_of_name:
                    index_of_name[name] = len(self.class_names)
                    self.class_names.append(name)
                    self.class_sources.append((source, value))
                lookup[value] = index_of_name[name]
            lookups.append(lookup)
        n = len(self.class_names)
        self.pixels = np.zeros((n, n), dtype=np.int64)
        self.m2 = np.zeros((n, n), dtype=np.float64)
        from_index = np.array([lookups[0][c] for c in (self._pairs // VALUE_SPAN).tolist()], dtype=np.int64)
        to_index = np.array([lookups[1][c] for c in (self._pairs % VALUE_SPAN).tolist()], dtype=np.int64)
        np.add.at(self.pixels, (from_index, to_index), self._pixels)
        np.add.at(self.m2, (from_index, to_index), self._m2)
        # pass 2's codes: 1.. over the observed (from, to) pairs in order; each raw pair points at its code
        observed = np.argwhere(self.pixels > 0)
        self.pairs = [(int(f), int(t)) for f, t in observed]
        code_of_pair = {pair: code for code, pair in enumerate(self.pairs, start=1)}
        self._codes = np.array([code_of_pair[(f, t)] for f, t in zip(from_index.tolist(), to_index.tolist())], dtype=np.int64)

    # --- results ---------------------------------------------------------------------------------

    @property
    def valid_pixels(self):
        return int(self.valid_per_row.sum())

    @property
    def valid_m2(self):
        return float((self.valid_per_row * self.areas).sum())

    def summary(self):
        """Per class: area before (row sums), after (column sums), gained from others, lost to others, net (m²);
        and the changed area and its share of the valid area."""
        m2 = self.m2
        stay = np.diag(m2)
        before, after = m2.sum(axis=1), m2.sum(axis=0)
        changed = float(m2.sum() - stay.sum())
        valid = float(m2.sum())
        return {
            "before_m2": before,
            "after_m2": after,
            "gains_m2": after - stay,
            "losses_m2": before - stay,
            "net_m2": after - before,
            "changed_m2": changed,
            "changed_pixels": int(self.pixels.sum() - np.trace(self.pixels)),
            "valid_m2": valid,
            "changed_fraction": changed / valid if valid > 0 else 0.0,
        }

    def pair_label(self, code):
        """'forest → crop', or 'forest (unchanged)', for a code 1..k of the map."""
        f, t = self.pairs[code - 1]
        if f == t:
            return f"{self.class_names[f]} (unchanged)"
        return f"{self.class_names[f]} → {self.class_names[t]}"

    # --- pass 2 ---------------------------------------------------------------------------------

    def produce(self, window):
        """[from -> to codes block (1..k, 0 = nodata)] for write_rasters."""
        codes, _, valid = self._pair_codes(window)
        out = np.zeros(valid.shape, dtype=np.uint32)
        if codes.size:
            at = np.clip(np.searchsorted(self._pairs, codes), 0, len(self._pairs) - 1)
            out[valid] = self._codes[at]
        return [EmbeddingBlock(out, valid)]


def _class_values(values, raster):
    """Raw class values as int64; a value no class map holds is a one-line error."""
    whole = values.astype(np.int64)
    if whole.size and (whole.min() < 0 or whole.max() >= VALUE_SPAN):
        bad = int(whole.min()) if whole.min() < 0 else int(whole.max())
        what = getattr(raster, "what", "INPUT")
        raise GeoEmbedError(f"{what} holds the class value {bad}; class maps hold values 0..{VALUE_SPAN - 1}.")
    return whole


# --- report ------------------------------------------------------------------------------------


def report_html(transitions, before_label, after_label):
    """A self-contained HTML page: the matrix in hectares, per-class gains/losses/net, changed area and share."""
    esc = html.escape
    names = transitions.class_names
    ha = transitions.m2 / 1e4
    summary = transitions.summary()
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>GeoEmbed class transitions</title>",
        "<style>body{font-family:sans-serif}table{border-collapse:collapse;margin-bottom:1em}"
        "td,th{border:1px solid #bbb;padding:3px 6px;text-align:right}th{background:#eee}td.l,th.l{text-align:left}"
        "td.d{background:#eee;color:#555}</style></head><body>",
        "<h1>Class transitions</h1>",
        f"<p>From <b>{esc(before_label)}</b> to <b>{esc(after_label)}</b>.</p>",
        f"<h2>Changed: {esc(area_text(summary['changed_m2']))}, {100 * summary['changed_fraction']:.2f} % of the valid "
        f"area ({esc(area_text(summary['valid_m2']))}, {transitions.valid_pixels} pixels)</h2>",
        "<h3>Transition matrix, hectares (rows: from, columns: to)</h3><table><tr><th class='l'>from \\ to</th>",
    ]
    parts.extend(f"<th>{esc(name)}</th>" for name in names)
    parts.append("<th>total</th></tr>")
    for i, name in enumerate(names):
        cells = "".join(f"<td class='{'d' if i == j else ''}'>{ha[i, j]:,.2f}</td>" for j in range(len(names)))
        parts.append(f"<tr><th class='l'>{esc(name)}</th>{cells}<td>{ha[i].sum():,.2f}</td></tr>")
    totals = "".join(f"<td>{ha[:, j].sum():,.2f}</td>" for j in range(len(names)))
    parts.append(f"<tr><th class='l'>total</th>{totals}<td>{ha.sum():,.2f}</td></tr></table>")
    parts.append(
        "<h3>Per class, hectares</h3><table><tr><th class='l'>class</th><th>before</th><th>after</th>"
        "<th>gains</th><th>losses</th><th>net</th></tr>"
    )
    for i, name in enumerate(names):
        cells = "".join(
            f"<td>{summary[key][i] / 1e4:,.2f}</td>" for key in ("before_m2", "after_m2", "gains_m2", "losses_m2", "net_m2")
        )
        parts.append(f"<tr><td class='l'>{esc(name)}</td>{cells}</tr>")
    parts.append(
        "</table><p>Gains: area that became the class; losses: area of the class that became another; "
        "net = gains - losses = after - before. Pixels where either map has no class are left out.</p></body></html>"
    )
    return "\n".join(parts)
