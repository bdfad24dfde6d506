"""Resampling and PCA colouring on a local Dask cluster (2 worker processes): the same files, bit for bit, as a run
in this process, for pieces of the output grid (resample: not the input's grid) and of the input grid (pca); a cancel
leaves nothing behind; an input that changed under the client is refused."""

import os

import numpy as np
import pytest
from osgeo import gdal, osr

from geoembed.analysis import pca, resample
from geoembed.analysis.distributed import cluster, pca_job, resample_job
from geoembed.analysis.distributed.pieces import Layout, Piece
from geoembed.loaders.errors import Cancelled, GeoEmbedError
from geoembed.loaders.model import NODATA
from geoembed.loaders.open import open_embeddings
from geoembed.loaders.raster.grid import Grid, Window, grid_from_bounds, transform_bounds
from geoembed.loaders.raster.writer import BLOCK, OutputSpec, provenance_metadata, write_geotiff, write_rasters
from tests.support.four_tiles import build_four_tiles
from tests.unit.helpers import assert_one_line
from tests.unit.test_distributed import WORKERS, Log, assert_same_file, needs_dask

pytestmark = needs_dask

BANDS = 8
WIDTH, HEIGHT = 800, 600  # source pixels of 10 m: several 128-pixel blocks of aggregated output each way


def write_float_embeddings(path):
    """A Float32 embedding GeoTIFF as geoembed:load writes one (continuous values, so that float sums are summed in a
    fixed order or differ), with NaN nodata: a box wider than a target pixel and scattered single pixels."""
    rng = np.random.default_rng(7)
    values = rng.standard_normal((BANDS, HEIGHT, WIDTH)).astype(np.float32)
    values /= np.linalg.norm(values, axis=0)
    values[:, 100:180, 240:330] = np.nan
    values[:, rng.integers(0, HEIGHT, 300), rng.integers(0, WIDTH, 300)] = np.nan
    dataset = gdal.GetDriverByName("GTiff").Create(str(path), WIDTH, HEIGHT, BANDS, gdal.GDT_Float32, ["TILED=YES"])
    dataset.SetGeoTransform((500000.0, 10.0, 0.0, 5000000.0, 0.0, -10.0))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32631)
    dataset.SetProjection(srs.ExportToWkt())
    dataset.SetMetadata({"GEOEMBED_PRODUCT": "test", "GEOEMBED_PRODUCT_NAME": "Test embeddings"})
    for index in range(BANDS):
        band = dataset.GetRasterBand(index + 1)
        band.SetDescription(f"A{index:02d}")
        band.SetNoDataValue(float("nan"))
        band.WriteArray(values[index])
    dataset = None
    return str(path)


@pytest.fixture(scope="module")
def floats(tmp_path_factory):
    return write_float_embeddings(tmp_path_factory.mktemp("floats") / "embeddings.tif")


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    return str(build_four_tiles(tmp_path_factory.mktemp("four-tiles")))


@pytest.fixture(scope="module")
def session():
    with cluster.connect(cluster.ClusterSettings(cluster.LOCAL, WORKERS)) as live:
        yield live


def target_grid(raster, resolution, crs=None):
    """The grid geoembed:resample derives from RESOLUTION (and CRS)."""
    crs = crs or raster.grid.crs
    bounds = transform_bounds(raster.grid.crs, crs, raster.grid.bounds)
    anchor = (raster.grid.x0, raster.grid.y0) if crs == raster.grid.crs else (0.0, 0.0)
    return grid_from_bounds(crs, bounds, resolution, anchor=anchor)


def how(mode):
    return mode if mode == "nearest" else "aggregate: sum of vectors, L2-normalised"


def resample_in_process(source, grid, mode, path):
    """What geoembed:resample writes in QGIS."""
    raster = open_embeddings(source, Log())
    result = resample.AggregateRaster(raster, grid) if mode == "aggregate" else resample.nearest(raster, grid)
    try:
        result.provenance.resampling = how(mode)
        write_geotiff(result, path)
    finally:
        result.close()


def resample_on_cluster(source, grid, mode, path, log, settings=None, session=None, piece_blocks=1, raster_of=None):
    raster = open_embeddings(raster_of or source, Log())
    try:
        raster.provenance.resampling = how(mode)
        options = {"session": session} if session is not None else {}
        resample_job.resample(settings, source, False, raster, grid, mode, path, log, piece_blocks=piece_blocks, **options)
    finally:
        raster.close()


CASES = {
    # name: (input fixture, resolution, target CRS, mode, expected block size of the aggregation)
    "aggregate-aligned-floats": ("floats", 30.0, None, "aggregate", resample.ALIGNED_BLOCK),
    "aggregate-aligned-aef": ("region", 30.0, None, "aggregate", resample.ALIGNED_BLOCK),
    "aggregate-other-phase": ("floats", 25.0, None, "aggregate", int(resample.SOURCE_WINDOW / 2.5)),
    "aggregate-other-crs": ("region", 0.0003, "EPSG:4326", "aggregate", None),
    "nearest-other-crs": ("floats", 0.0001, "EPSG:4326", "nearest", None),
}


@pytest.mark.parametrize("case", list(CASES))
def test_resample_on_two_workers_equals_the_run_in_process(tmp_path, request, session, case):
    name, resolution, crs, mode, block = CASES[case]
    source = request.getfixturevalue(name)
    raster = open_embeddings(source, Log())
    grid = target_grid(raster, resolution, crs)
    used = resample.aggregate_block_size(raster, grid) if mode == "aggregate" else BLOCK
    raster.close()
    assert block is None or used == block
    assert len(Layout(grid, 1, used).pieces) >= 3  # pieces of one block each
    expected, got = str(tmp_path / "in-process.tif"), str(tmp_path / "cluster.tif")
    resample_in_process(source, grid, mode, expected)
    log = Log()
    resample_on_cluster(source, grid, mode, got, log, session=session)
    assert_same_file(expected, got)
    assert gdal.Open(got).GetMetadataItem("GEOEMBED_RESAMPLING") == how(mode)
    values = gdal.Open(got).ReadAsArray()
    assert (values == NODATA).any() and (values != NODATA).any()  # nodata and data both went through the pieces
    assert log.fractions[-1] == pytest.approx(1.0) and log.fractions == sorted(log.fractions)
    assert sorted(os.listdir(tmp_path)) == ["cluster.tif", "in-process.tif"]  # no scratch folder, no piece


def test_an_aggregation_piece_reads_only_the_source_under_it(floats):
    """A worker's AggregateRaster over one piece reads the source windows of that piece, nothing else."""
    raster = open_embeddings(floats, Log())
    grid = target_grid(raster, 30.0)
    seen = []
    read_linear = raster.read_linear

    def recording(window):
        seen.append(window)
        return read_linear(window)

    raster.read_linear = recording
    piece = Piece(3, Window(128, 128, 139, 72))  # the south-east piece of 2 x 2 pieces of 128
    result = resample.AggregateRaster(raster, grid, region=piece.window)
    try:
        for window in grid.window_grid(piece.window).blocks(result.block_size):
            result.read(piece.shift(window))
    finally:
        result.close()
    rows = {(w.row, w.row + w.height) for w in seen}
    cols = {(w.col, w.col + w.width) for w in seen}
    assert min(r0 for r0, _ in rows) == 128 * 3 and max(r1 for _, r1 in rows) == HEIGHT
    assert min(c0 for c0, _ in cols) == 128 * 3 and max(c1 for _, c1 in cols) == WIDTH
    assert sum(w.width * w.height for w in seen) == (WIDTH - 384) * (HEIGHT - 384)  # each source pixel once
    assert grid.width == 128 + 139 and grid.height == 128 + 72


def test_aggregation_refuses_a_finer_target_before_any_work(tmp_path, floats):
    raster = open_embeddings(floats, Log())
    try:
        with pytest.raises(GeoEmbedError) as error:
            resample_job.resample(
                None, floats, False, raster, target_grid(raster, 5.0), "aggregate", str(tmp_path / "o.tif"), Log()
            )
    finally:
        raster.close()
    assert "MODE=nearest" in assert_one_line(error.value)
    assert os.listdir(tmp_path) == []


def fitted(source):
    raster = open_embeddings(source, Log())
    try:
        return pca.fit_raster(raster, 5000, 0)[0]
    finally:
        raster.close()


def pca_spec(path, source_raster):
    meta = provenance_metadata(source_raster.provenance)
    meta["GEOEMBED_ANALYSIS"] = "PCA false colour (test)"
    return OutputSpec(str(path), ("PC1", "PC2", "PC3"), gdal.GDT_Byte, 0, meta)


@pytest.mark.parametrize("name", ["region", "floats"])
def test_pca_on_two_workers_equals_the_run_in_process(tmp_path, request, session, name):
    source = request.getfixturevalue(name)
    model = fitted(source)
    raster = open_embeddings(source, Log())
    try:
        expected = pca_spec(tmp_path / "in-process.tif", raster)
        write_rasters(raster.grid, [expected], lambda w: [model.produce(raster.read(w))])
        got = pca_spec(tmp_path / "cluster.tif", raster)
        log = Log()
        pca_job.pca(None, source, False, raster.grid, model, got, log, session=session, piece_blocks=1)
    finally:
        raster.close()
    assert_same_file(expected.path, got.path)
    colours = gdal.Open(got.path).ReadAsArray()
    assert (colours == 0).any() and len(np.unique(colours)) > 100  # nodata (0) and a real composite
    assert log.fractions[-1] == pytest.approx(1.0)
    assert sorted(os.listdir(tmp_path)) == ["cluster.tif", "in-process.tif"]


def test_the_pca_model_reaches_the_workers_unchanged(region):
    model = fitted(region)
    again = pca_job.model_from_payload(pca_job.model_payload(model))
    for field in ("mean", "axes", "lows", "highs"):
        assert getattr(again, field).tobytes() == getattr(model, field).tobytes()
    assert (again.band_names, again.product, again.percentiles) == (model.band_names, model.product, model.percentiles)


def cancel_resample(region, path, log, settings):
    raster = open_embeddings(region, Log())
    grid = target_grid(raster, 30.0)
    raster.close()
    resample_on_cluster(region, grid, "aggregate", path, log, settings=settings)


def cancel_pca(region, path, log, settings):
    model = fitted(region)
    raster = open_embeddings(region, Log())
    try:
        pca_job.pca(settings, region, False, raster.grid, model, pca_spec(path, raster), log, piece_blocks=1)
    finally:
        raster.close()


@pytest.mark.parametrize("run", [cancel_resample, cancel_pca], ids=["resample", "pca"])
def test_cancel_leaves_no_piece(tmp_path, region, run):
    log = Log(cancel_at=1)  # Cancel clicked once the first piece is done
    settings = cluster.ClusterSettings(cluster.LOCAL, WORKERS)
    with pytest.raises(Cancelled):
        run(region, str(tmp_path / "out.tif"), log, settings)
    assert len(log.fractions) == 1
    assert os.listdir(tmp_path) == []  # no output, no scratch folder, no piece


def test_a_changed_input_is_refused_by_the_resampling_workers(tmp_path, region, floats, session):
    raster = open_embeddings(floats, Log())
    grid = target_grid(raster, 30.0)
    raster.close()
    with pytest.raises(GeoEmbedError) as error:  # the client planned on floats; the workers find the region there
        resample_on_cluster(region, grid, "aggregate", str(tmp_path / "out.tif"), Log(), session=session, raster_of=floats)
    assert "changed" in assert_one_line(error.value)
    assert os.listdir(tmp_path) == []


def test_a_changed_input_is_refused_by_the_pca_workers(tmp_path, region, session):
    model = fitted(region)
    raster = open_embeddings(region, Log())
    try:
        other = Grid(raster.grid.crs, raster.grid.x0 + 10, raster.grid.y0, 10.0, 10.0, raster.grid.width, raster.grid.height)
        spec = pca_spec(tmp_path / "out.tif", raster)
        with pytest.raises(GeoEmbedError) as error:
            pca_job.pca(None, region, False, other, model, spec, Log(), session=session)
    finally:
        raster.close()
    assert "changed" in assert_one_line(error.value)
    assert os.listdir(tmp_path) == []
