"""Objects in a single-band raster: the connected components of its thresholded pixels (or of chosen classes), labelled
block by block with bounded memory.

Pass 1 reads the raster block by block and labels each block on its own (scipy.ndimage.label). Each block's labels
get provisional ids that follow those of the blocks before it; where a labelled pixel touches a labelled pixel of the
block above or to the left (diagonally too for 8-connectivity), the two provisional ids are recorded as one object.
Only one row of ids above the current block row and one column to the left are kept. Per provisional id the pixel
count, area (per row: exact on geographic grids), highest and summed score are kept. At the end the recorded pairs
join the provisional ids into objects (scipy.sparse.csgraph.connected_components), whose statistics are summed.
Objects are ranked and, in pass 2, each block is labelled again the same way and its provisional ids mapped to ranks:
a label raster whose value is the object's rank (0 = no object).

Memory grows with the number of objects (tens of bytes each, as the output holds one feature per object), not with
the raster: with MIN_AREA, objects that cannot grow across a block edge are dropped as soon as they are seen.
"""

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ..loaders.errors import Cancelled, GeoEmbedError
from ..loaders.model import EmbeddingBlock
from ..loaders.raster.prefetch import Prefetched
from ..loaders.raster.writer import BLOCK
from .change import pixel_areas_m2

CONNECTIVITIES = (4, 8)
AREA_TOLERANCE = 1e-9  # relative: areas summed in another order may differ in the last bits


@dataclass(frozen=True)
class Selection:
    """Which pixels are in an object: valid pixels with value >= threshold, or (classes given) valid pixels whose
    value is one of the classes. Objects never mix classes."""

    threshold: float = None
    classes: tuple = ()

    def keys(self, values, valid):
        """(rows, cols) int32: 0 = out, k >= 1 = in, k the 1-based index of the pixel's class (1 for scores)."""
        if self.classes:
            keys = np.zeros(values.shape, dtype=np.int32)
            for index, value in enumerate(self.classes, start=1):
                keys[valid & (values == value)] = index
            return keys
        return (valid & (values >= threshold_in(values.dtype, self.threshold))).astype(np.int32)


def threshold_in(dtype, threshold):
    """The threshold at the raster's precision: a Float32 pixel that shows 0.7 is float32(0.7) < 0.7 in float64."""
    return np.float32(threshold) if dtype == np.float32 else threshold


def structure(connectivity):
    if connectivity not in CONNECTIVITIES:
        raise GeoEmbedError(f"CONNECTIVITY must be 4 or 8, got {connectivity}.")
    return ndimage.generate_binary_structure(2, 1 if connectivity == 4 else 2)


def label_block(keys, connectivity, row_areas, min_area=0.0):
    """(labels int64 (rows, cols) 0..n, n) of one block: components of equal nonzero keys, numbered in scan order per
    key. With min_area, components below it that do not touch the block's edge are dropped (they cannot grow)."""
    labels = np.zeros(keys.shape, dtype=np.int64)
    count = 0
    for key in np.unique(keys[keys > 0]):
        part, found = ndimage.label(keys == key, structure=structure(connectivity))
        labels[part > 0] = part[part > 0] + count
        count += found
    if min_area > 0 and count:
        areas = np.bincount(labels.ravel(), weights=_pixel_areas(row_areas, keys.shape).ravel(), minlength=count + 1)
        keep = areas >= min_area * (1 - AREA_TOLERANCE)
        keep[np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])] = True
        keep[0] = False
        renumber = np.cumsum(keep) * keep
        labels, count = renumber[labels], int(keep.sum())
    return labels, count


def _pixel_areas(row_areas, shape):
    return np.broadcast_to(np.asarray(row_areas, dtype=np.float64)[:, None], shape)


def touching_pairs(ids, keys, other_ids, other_keys, connectivity):
    """(a, b) pairs of ids of pixels in one line (a row or column of the block) and the adjacent line of neighbours
    (other_*, one longer on each side, padded with 0), where both are labelled with the same key."""
    offsets = (-1, 0, 1) if connectivity == 8 else (0,)
    length = len(ids)
    pairs = []
    for offset in offsets:
        there = other_ids[1 + offset : 1 + offset + length]
        there_keys = other_keys[1 + offset : 1 + offset + length]
        touch = (ids > 0) & (there > 0) & (keys == there_keys)
        if touch.any():
            pairs.append(np.stack([ids[touch], there[touch]], axis=1))
    return pairs


def _padded(line, length_before=1):
    return np.concatenate([np.zeros(length_before, line.dtype), line, np.zeros(1, line.dtype)])


@dataclass
class DetectedObjects:
    """The objects in rank order (arrays of one entry per object; rank = index + 1)."""

    pixels: np.ndarray
    area_m2: np.ndarray
    max_score: np.ndarray
    mean_score: np.ndarray
    key: np.ndarray  # 1-based index into Selection.classes (1 for scores)

    def __len__(self):
        return len(self.pixels)


class ComponentLabeller:
    """The two passes of the module docstring over `raster` (grid, read(window) -> EmbeddingBlock of one band)."""

    def __init__(self, raster, selection, connectivity=8, min_area=0.0, max_objects=None, block=BLOCK):
        structure(connectivity)  # refuses a wrong connectivity before any work
        self.raster, self.selection = raster, selection
        self.grid = raster.grid
        self.connectivity, self.min_area, self.max_objects = connectivity, float(min_area or 0.0), max_objects
        self.block = block
        self.row_areas = pixel_areas_m2(self.grid)
        self.windows = list(self.grid.blocks(block))
        self._offsets = {}
        self._final = None
        self._reader = None
        # what pass 1 saw, for messages
        self.valid_pixels = 0
        self.selected_pixels = 0
        self.highest = None  # the highest valid value (scores)
        self.values_seen = set()  # distinct valid values (class maps, while few)
        self.objects = None
        self.candidates = 0  # objects before MIN_AREA and MAX_OBJECTS

    # --- pass 1 -------------------------------------------------------------------------------------------------

    def find(self, progress=None, is_cancelled=None):
        """Pass 1: label every block, join labels across block edges, rank the objects. Returns DetectedObjects."""
        width = self.grid.width
        above_ids, above_keys = np.zeros(width, np.int64), np.zeros(width, np.int32)
        below_ids, below_keys = np.zeros(width, np.int64), np.zeros(width, np.int32)
        left_ids = left_keys = None
        stats, pairs, total = [], [], 0
        reader = Prefetched(_Borrowed(self.raster), self.windows)
        try:
            for done, window in enumerate(self.windows, start=1):
                if is_cancelled and is_cancelled():
                    raise Cancelled()
                block = reader.read(window)
                self._note(block)
                keys = self.selection.keys(block.values, block.valid)
                rows = slice(window.row, window.row + window.height)
                labels, count = label_block(keys, self.connectivity, self.row_areas[rows], self.min_area)
                self._offsets[window] = total
                ids = np.where(labels > 0, labels + total, 0)
                stats.append(self._block_stats(labels, count, keys, block.values, self.row_areas[rows]))
                cols = slice(window.col, window.col + window.width)
                if window.row > 0:  # the row above, one pixel wider on each side (diagonal neighbours)
                    lo, hi = max(window.col - 1, 0), min(window.col + window.width + 1, width)
                    before, after = 1 - (window.col - lo), 1 - (hi - window.col - window.width)
                    pairs += touching_pairs(
                        ids[0],
                        keys[0],
                        np.pad(above_ids[lo:hi], (before, after)),
                        np.pad(above_keys[lo:hi], (before, after)),
                        self.connectivity,
                    )
                if window.col > 0:  # the column to the left, same rows
                    pairs += touching_pairs(ids[:, 0], keys[:, 0], _padded(left_ids), _padded(left_keys), self.connectivity)
                left_ids, left_keys = ids[:, -1].copy(), keys[:, -1].copy()
                below_ids[cols], below_keys[cols] = ids[-1], keys[-1]
                if window.col + window.width == width:  # the block row is done
                    above_ids, below_ids = below_ids, above_ids
                    above_keys, below_keys = below_keys, above_keys
                total += count
                if progress:
                    progress(done / len(self.windows))
        finally:
            reader.close()
        self.objects = self._rank(total, stats, pairs)
        return self.objects

    def _note(self, block):
        valid = block.valid
        self.valid_pixels += int(valid.sum())
        if not valid.any():
            return
        values = block.values[valid]
        highest = float(values.max())
        self.highest = highest if self.highest is None else max(self.highest, highest)
        if self.selection.classes and len(self.values_seen) <= 1000:
            self.values_seen.update(np.unique(values).tolist())

    def _block_stats(self, labels, count, keys, values, row_areas):
        """(pixels, area, highest, sum, key) per label 1..count of one block."""
        flat = labels.ravel()
        pixels = np.bincount(flat, minlength=count + 1)[1:]
        self.selected_pixels += int(pixels.sum())
        area = np.bincount(flat, weights=_pixel_areas(row_areas, labels.shape).ravel(), minlength=count + 1)[1:]
        if count == 0:
            empty = np.zeros(0)
            return pixels, area, empty, empty, np.zeros(0, np.int32)
        order = np.argsort(flat, kind="stable")
        sorted_labels = flat[order]
        starts = np.searchsorted(sorted_labels, np.arange(1, count + 1))
        sorted_values = values.ravel()[order].astype(np.float64)
        highest = np.maximum.reduceat(sorted_values, starts)
        sums = np.bincount(flat, weights=values.ravel().astype(np.float64), minlength=count + 1)[1:]
        key = keys.ravel()[order][starts]
        return pixels, area, highest, sums, key

    def _rank(self, total, stats, pairs):
        """Join provisional ids into objects, keep those of MIN_AREA, rank them, keep MAX_OBJECTS."""
        pixels, area, highest, sums, key = (np.concatenate([s[i] for s in stats]) for i in range(5))
        if pairs:
            edges = np.concatenate(pairs) - 1  # provisional ids are 1-based
            graph = coo_matrix((np.ones(len(edges), np.int8), (edges[:, 0], edges[:, 1])), shape=(total, total))
            _, component = connected_components(graph, directed=False)
        else:
            component = np.arange(total)
        # objects numbered by their first provisional id (north-west first): np.unique's first occurrences
        _, first, inverse = np.unique(component, return_index=True, return_inverse=True)
        order = np.argsort(first, kind="stable")
        number = np.empty(len(order), np.int64)
        number[order] = np.arange(len(order))
        obj = number[inverse.ravel()]
        n = len(order)
        obj_pixels = np.bincount(obj, weights=pixels, minlength=n).astype(np.int64)
        obj_area = np.bincount(obj, weights=area, minlength=n)
        obj_sums = np.bincount(obj, weights=sums, minlength=n)
        obj_highest = np.full(n, -np.inf)
        np.maximum.at(obj_highest, obj, highest)
        obj_key = np.zeros(n, np.int32)
        obj_key[obj] = key
        self.candidates = n
        kept = np.flatnonzero(obj_area >= self.min_area * (1 - AREA_TOLERANCE)) if self.min_area > 0 else np.arange(n)
        if self.selection.classes:  # largest first
            ranking = np.lexsort((kept, -obj_pixels[kept], -obj_area[kept]))
        else:  # highest score first, then largest
            ranking = np.lexsort((kept, -obj_pixels[kept], -obj_area[kept], -obj_highest[kept]))
        ranked = kept[ranking]
        if self.max_objects:
            ranked = ranked[: self.max_objects]
        rank_of_object = np.zeros(n, np.uint32)
        rank_of_object[ranked] = np.arange(1, len(ranked) + 1, dtype=np.uint32)
        self._final = np.concatenate([[0], rank_of_object[obj]]).astype(np.uint32)
        return DetectedObjects(
            pixels=obj_pixels[ranked],
            area_m2=obj_area[ranked],
            max_score=obj_highest[ranked],
            mean_score=obj_sums[ranked] / np.maximum(obj_pixels[ranked], 1),
            key=obj_key[ranked],
        )

    # --- pass 2 -------------------------------------------------------------------------------------------------

    def rank_labels(self, window):
        """Pass 2: (rows, cols) uint32 rank of the object of every pixel of a window of pass 1 (0 = none); windows
        asked for in pass 1's order are read ahead in the background."""
        if self._final is None:
            raise GeoEmbedError("find() must run before rank_labels().")
        if window not in self._offsets:
            raise GeoEmbedError("rank_labels() takes the windows of pass 1 (the same block size).")
        if self._reader is None:
            self._reader = Prefetched(_Borrowed(self.raster), self.windows)
        block = self._reader.read(window)
        keys = self.selection.keys(block.values, block.valid)
        rows = slice(window.row, window.row + window.height)
        labels, _ = label_block(keys, self.connectivity, self.row_areas[rows], self.min_area)
        ids = np.where(labels > 0, labels + self._offsets[window], 0)
        return self._final[ids]

    def close(self):
        """Stop pass 2's background reads (the raster itself stays open: its owner closes it)."""
        if self._reader is not None:
            self._reader.close()
            self._reader = None


class _Borrowed:
    """A raster lent to Prefetched, which closes what it wraps: this one is closed by its owner."""

    def __init__(self, raster):
        self.raster = raster
        self.grid, self.band_names, self.provenance = raster.grid, raster.band_names, raster.provenance

    def read(self, window):
        block = self.raster.read(window)
        return EmbeddingBlock(block.values[0], block.valid)  # the labelling works on 2-D blocks

    def close(self):
        pass
