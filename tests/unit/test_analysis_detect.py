"""detect: block-wise connected-component labelling against scipy.ndimage.label on the whole array.

Tiny blocks force objects across block edges (U-shapes that only join in a later block row, diagonal touches at block
corners); expectations come from labelling the whole array at once and from plain numpy sums per component.
"""

import numpy as np
import pytest
from scipy import ndimage

from geoembed.analysis import detect
from geoembed.analysis.change import pixel_areas_m2
from geoembed.loaders.errors import Cancelled, GeoEmbedError
from geoembed.loaders.model import EmbeddingBlock
from geoembed.loaders.raster import polygons
from geoembed.loaders.raster.grid import Grid
from tests.unit.helpers import assert_one_line

STRUCTURES = {4: ndimage.generate_binary_structure(2, 1), 8: ndimage.generate_binary_structure(2, 2)}


class ArrayRaster:
    """A single-band raster over a 2-D array, read as (1, rows, cols) blocks like SingleBandRaster; reads are counted."""

    band_names = ("score",)
    provenance = None

    def __init__(self, values, valid=None, crs="EPSG:32631", res=10.0, y0=5_000_000.0, x0=500_000.0):
        self.values, self.valid = values, np.ones(values.shape, bool) if valid is None else valid
        self.grid = Grid(crs, x0, y0, res, res, values.shape[1], values.shape[0])
        self.reads = 0
        self.closed = False

    def read(self, window):
        self.reads += 1
        rows = slice(window.row, window.row + window.height)
        cols = slice(window.col, window.col + window.width)
        return EmbeddingBlock(self.values[np.newaxis, rows, cols].copy(), self.valid[rows, cols].copy())

    def close(self):
        self.closed = True


def rank_map(labeller):
    """The whole rank raster of pass 2, assembled from its windows."""
    out = np.zeros((labeller.grid.height, labeller.grid.width), np.uint32)
    for window in labeller.windows:
        out[window.row : window.row + window.height, window.col : window.col + window.width] = labeller.rank_labels(window)
    labeller.close()
    return out


def brute_objects(values, valid, connectivity, threshold=None, classes=(), row_areas=None):
    """[(pixel set, max, mean, area, class)] of every component labelled on the whole array at once."""
    if classes:
        masks = [(valid & (values == c), c) for c in classes]
    else:
        masks = [(valid & (values >= threshold), None)]
    out = []
    for mask, klass in masks:
        labels, count = ndimage.label(mask, structure=STRUCTURES[connectivity])
        for index in range(1, count + 1):
            where = labels == index
            rows = np.nonzero(where)[0]
            area = float(row_areas[rows].sum()) if row_areas is not None else None
            out.append((frozenset(zip(*np.nonzero(where))), float(values[where].max()), float(values[where].mean()), area, klass))
    return out


def pixel_sets(ranks):
    return {rank: frozenset(zip(*np.nonzero(ranks == rank))) for rank in range(1, int(ranks.max()) + 1)}


def assert_same_objects(labeller, found, values, valid, connectivity, threshold=None, classes=()):
    ranks = rank_map(labeller)
    areas = pixel_areas_m2(labeller.grid)
    expected = brute_objects(values, valid, connectivity, threshold, classes, areas)
    sets = pixel_sets(ranks)
    assert len(found) == len(expected) == len(sets)
    by_set = {e[0]: e for e in expected}
    assert set(sets.values()) == set(by_set)
    for rank, pixels in sets.items():
        _, highest, mean, area, klass = by_set[pixels]
        i = rank - 1
        assert found.pixels[i] == len(pixels)
        assert found.area_m2[i] == pytest.approx(area, rel=1e-12)
        if classes:
            assert classes[found.key[i] - 1] == klass
        else:
            assert found.max_score[i] == pytest.approx(highest)
            assert found.mean_score[i] == pytest.approx(mean)
    return ranks


def u_shapes():
    """A U whose arms only meet at the bottom (two blocks rows later), a ring with a hole, diagonal chains."""
    a = np.zeros((14, 13), np.float32)
    a[0:7, 1] = 0.9  # left arm
    a[0:7, 5] = 0.8  # right arm
    a[6, 1:6] = 0.7  # bottom
    a[1:6, 8:12] = 0.6  # ring ...
    a[2:5, 9:11] = 0.0  # ... with a hole
    for k in range(5):  # a diagonal chain: one object with 8-connectivity, five with 4
        a[8 + k, 2 + k] = 0.95
    a[13, 12] = 0.5  # a lone corner pixel
    a[9, 12], a[10, 11] = 0.55, 0.55  # an anti-diagonal pair across a block edge
    return a


@pytest.mark.parametrize("connectivity", [4, 8])
@pytest.mark.parametrize("block", [1, 2, 3, 4, 5, 64])
def test_u_shapes_rings_and_diagonals_equal_whole_array_labelling(connectivity, block):
    values = u_shapes()
    raster = ArrayRaster(values)
    labeller = detect.ComponentLabeller(raster, detect.Selection(threshold=0.5), connectivity, block=block)
    found = labeller.find()
    ranks = assert_same_objects(labeller, found, values, raster.valid, connectivity, threshold=0.5)
    assert ranks[0, 1] != 0 and ranks[0, 1] == ranks[0, 5], "the U's arms are one object"
    chain = {int(ranks[8 + k, 2 + k]) for k in range(5)}
    assert len(chain) == (1 if connectivity == 8 else 5)
    pair = {int(ranks[9, 12]), int(ranks[10, 11])}
    assert len(pair) == (1 if connectivity == 8 else 2)


@pytest.mark.parametrize("connectivity", [4, 8])
@pytest.mark.parametrize("block", [3, 7, 16])
def test_random_scores_with_nodata_equal_whole_array_labelling(connectivity, block):
    rng = np.random.default_rng(block * 10 + connectivity)
    values = ndimage.uniform_filter(rng.random((41, 37)), 3).astype(np.float32)  # blobs, not salt and pepper only
    valid = rng.random(values.shape) > 0.05
    threshold = float(np.quantile(values, 0.6))
    selection = detect.Selection(threshold=threshold)
    labeller = detect.ComponentLabeller(ArrayRaster(values, valid), selection, connectivity, block=block)
    found = labeller.find()
    assert len(found) > 5
    assert_same_objects(labeller, found, values, valid, connectivity, threshold=threshold)
    assert labeller.valid_pixels == int(valid.sum())
    assert labeller.highest == pytest.approx(float(values[valid].max()))


def test_ranks_go_by_highest_score_then_area():
    values = np.zeros((10, 10), np.float32)
    values[0, 0] = 0.9  # rank 1: highest
    values[5:8, 5:8] = 0.8  # rank 2: 9 pixels at 0.8
    values[0, 5:7] = 0.8  # rank 3: 2 pixels at 0.8
    values[9, 0:4] = 0.6  # rank 4
    labeller = detect.ComponentLabeller(ArrayRaster(values), detect.Selection(threshold=0.5), 8, block=4)
    found = labeller.find()
    ranks = rank_map(labeller)
    assert [ranks[0, 0], ranks[6, 6], ranks[0, 5], ranks[9, 0]] == [1, 2, 3, 4]
    assert found.pixels.tolist() == [1, 9, 2, 4]
    assert found.max_score.tolist() == pytest.approx([0.9, 0.8, 0.8, 0.6])


def test_threshold_compares_at_the_rasters_precision():
    values = np.full((2, 2), np.float32(0.7))
    labeller = detect.ComponentLabeller(ArrayRaster(values), detect.Selection(threshold=0.7), 8)
    assert len(labeller.find()) == 1, "a Float32 pixel showing 0.7 reaches THRESHOLD 0.7"


@pytest.mark.parametrize("block", [2, 5, 64])
def test_min_area_and_max_objects(block):
    values = u_shapes()
    areas = pixel_areas_m2(ArrayRaster(values).grid)
    expected = brute_objects(values, np.ones(values.shape, bool), 8, threshold=0.5, row_areas=areas)
    min_area = 300.0  # pixels of 100 m²: objects of 3 pixels or more
    big = [e for e in expected if e[3] >= min_area]
    assert 0 < len(big) < len(expected)
    labeller = detect.ComponentLabeller(ArrayRaster(values), detect.Selection(threshold=0.5), 8, min_area=min_area, block=block)
    found = labeller.find()
    assert sorted(found.pixels.tolist()) == sorted(len(e[0]) for e in big)
    assert set(pixel_sets(rank_map(labeller)).values()) == {e[0] for e in big}
    labeller = detect.ComponentLabeller(
        ArrayRaster(values), detect.Selection(threshold=0.5), 8, min_area=min_area, max_objects=2, block=block
    )
    found = labeller.find()
    best = sorted(big, key=lambda e: (-e[1], -e[3]))[:2]
    assert set(pixel_sets(rank_map(labeller)).values()) == {e[0] for e in best}
    assert len(found) == 2


@pytest.mark.parametrize("connectivity", [4, 8])
@pytest.mark.parametrize("block", [2, 6, 64])
def test_class_map_objects_never_mix_classes(connectivity, block):
    rng = np.random.default_rng(7)
    values = ndimage.median_filter(rng.integers(0, 5, (30, 27)), 3).astype(np.uint8)  # class 0 = nodata
    valid = values != 0
    classes = (2, 4)
    labeller = detect.ComponentLabeller(ArrayRaster(values, valid), detect.Selection(classes=classes), connectivity, block=block)
    found = labeller.find()
    assert len(found) > 3
    ranks = assert_same_objects(labeller, found, values, valid, connectivity, classes=classes)
    assert list(found.area_m2) == sorted(found.area_m2, reverse=True), "class objects are ranked by area"
    for rank in range(1, len(found) + 1):
        assert len(set(values[ranks == rank].tolist())) == 1


def test_areas_on_a_geographic_grid_are_summed_per_row():
    values = np.zeros((6, 4), np.float32)
    values[:, 1] = 1.0  # one column across rows of different areas
    raster = ArrayRaster(values, crs="EPSG:4326", res=0.5, x0=10.0, y0=70.0)
    labeller = detect.ComponentLabeller(raster, detect.Selection(threshold=1.0), 8, block=2)
    found = labeller.find()
    areas = pixel_areas_m2(raster.grid)
    assert found.area_m2[0] == pytest.approx(areas.sum(), rel=1e-12)
    assert areas[0] < areas[-1], "rows nearer the pole are smaller"


def test_nothing_selected_gives_no_object():
    values = np.zeros((5, 5), np.float32)
    labeller = detect.ComponentLabeller(ArrayRaster(values), detect.Selection(threshold=0.5), 8, block=2)
    assert len(labeller.find()) == 0
    assert labeller.highest == 0.0
    assert not rank_map(labeller).any()


def test_cancel_stops_pass_one_and_wrong_connectivity_is_refused():
    raster = ArrayRaster(u_shapes())
    labeller = detect.ComponentLabeller(raster, detect.Selection(threshold=0.5), 8, block=3)
    with pytest.raises(Cancelled):
        labeller.find(is_cancelled=lambda: True)
    assert not raster.closed, "the raster belongs to the caller"
    with pytest.raises(GeoEmbedError) as caught:
        detect.ComponentLabeller(raster, detect.Selection(threshold=0.5), 6)
    assert_one_line(caught.value)
    assert "CONNECTIVITY" in str(caught.value)


def test_progress_reaches_one():
    fractions = []
    labeller = detect.ComponentLabeller(ArrayRaster(u_shapes()), detect.Selection(threshold=0.5), 8, block=4)
    labeller.find(progress=fractions.append)
    assert fractions[-1] == 1.0 and fractions == sorted(fractions)


# --- polygons of the label raster (loaders/raster/polygons.py) -------------------------------------------------


def rasterised(gpkg_path, grid):
    """The scratch polygons burnt back onto the grid (pixel centres inside), with their ids."""
    from osgeo import gdal, ogr

    source = ogr.Open(str(gpkg_path))
    target = gdal.GetDriverByName("MEM").Create("", grid.width, grid.height, 1, gdal.GDT_UInt32)
    target.SetGeoTransform(grid.geotransform)
    gdal.RasterizeLayer(target, [1], source.GetLayer(0), options=[f"ATTRIBUTE={polygons.FIELD}"])
    return target.ReadAsArray()


@pytest.mark.parametrize("connectivity", [4, 8])
def test_polygons_of_the_rank_raster_cover_exactly_each_objects_pixels(connectivity, tmp_path):
    from osgeo import ogr

    from geoembed.loaders.raster.writer import OutputSpec, write_rasters

    values = u_shapes()
    raster = ArrayRaster(values)
    labeller = detect.ComponentLabeller(raster, detect.Selection(threshold=0.5), connectivity, block=4)
    found = labeller.find()
    label_path = str(tmp_path / "labels.tif")
    spec = OutputSpec(label_path, ("object",), gdal_uint32(), 0)
    write_rasters(raster.grid, [spec], lambda w: [rank_block(labeller, w)], block=4)
    labeller.close()
    gpkg = polygons.polygonize(label_path, str(tmp_path / "objects.gpkg"))
    ranks = rank_map(labeller)  # pass 2 again: the same ranks
    assert np.array_equal(rasterised(gpkg, raster.grid), ranks)
    objects = list(polygons.objects_in_order(gpkg))
    assert [rank for rank, _ in objects] == list(range(1, len(found) + 1))
    for rank, geometry in objects:
        assert geometry.GetGeometryType() == ogr.wkbMultiPolygon and geometry.IsValid()
        assert geometry.GetArea() == pytest.approx(found.pixels[rank - 1] * 100.0)
    ring = ranks[1, 8]
    ring_geometry = dict(objects)[ring]
    assert ring_geometry.GetGeometryRef(0).GetGeometryCount() == 2, "the ring keeps its hole"
    chain = dict(objects)[ranks[8, 2]]
    assert chain.GetGeometryCount() == (5 if connectivity == 8 else 1), "corner-touching pieces in one MultiPolygon"


def test_polygonize_cancel_raises(tmp_path):
    from geoembed.loaders.raster.writer import OutputSpec, write_rasters

    raster = ArrayRaster(u_shapes())
    labeller = detect.ComponentLabeller(raster, detect.Selection(threshold=0.5), 8)
    labeller.find()
    label_path = str(tmp_path / "labels.tif")
    write_rasters(raster.grid, [OutputSpec(label_path, ("object",), gdal_uint32(), 0)], lambda w: [rank_block(labeller, w)])
    with pytest.raises(Cancelled):
        polygons.polygonize(label_path, str(tmp_path / "objects.gpkg"), is_cancelled=lambda: True)


def gdal_uint32():
    from osgeo import gdal

    return gdal.GDT_UInt32


def rank_block(labeller, window):
    ranks = labeller.rank_labels(window)
    return EmbeddingBlock(ranks, ranks > 0)
