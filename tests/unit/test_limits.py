"""Refusals made before any work: extents the long way round the globe, outputs that cannot fit on the disk."""

import os
from collections import namedtuple

import pytest

from geoembed.loaders.errors import GeoEmbedError
from geoembed.loaders.load import LoadRequest, check_extent, plan
from geoembed.loaders.raster import writer
from geoembed.loaders.raster.grid import Grid
from geoembed.loaders.raster.writer import OutputSpec, check_space
from tests.unit.helpers import assert_one_line

Usage = namedtuple("Usage", "total used free")


def test_an_extent_across_the_antimeridian_is_refused_in_one_line():
    with pytest.raises(GeoEmbedError) as info:
        check_extent((-179.5, -17.0, 179.5, -16.0), "EPSG:4326")  # Fiji, 179.5E..179.5W, as QGIS orders it
    message = assert_one_line(info.value)
    assert "359.0 degrees" in message and "antimeridian" in message


def test_extents_up_to_half_the_globe_pass_in_any_crs():
    check_extent((-90.0, -10.0, 90.0, 10.0), "EPSG:4326")
    check_extent((700000.0, 4980000.0, 740000.0, 5000000.0), "EPSG:32631")


def test_load_refuses_the_extent_before_reading_anything(aef_mirror, tmp_path):
    world = (-179.9, 44.0, 179.9, 45.0)
    request = LoadRequest(output=str(tmp_path / "out.tif"), product="aef", source=str(aef_mirror), extent=world)
    with pytest.raises(GeoEmbedError, match="antimeridian"):
        plan(request)
    assert not os.listdir(tmp_path)


def test_an_output_larger_than_the_free_space_is_refused(tmp_path, monkeypatch):
    grid = Grid("EPSG:32631", 0.0, 0.0, 10.0, 10.0, 100_000, 100_000)  # 1e10 pixels x 64 bands of Float32
    spec = OutputSpec(str(tmp_path / "big.tif"), tuple(f"A{i:02d}" for i in range(64)))
    monkeypatch.setattr(writer.shutil, "disk_usage", lambda folder: Usage(10**13, 0, 5 * 10**11))
    with pytest.raises(GeoEmbedError) as info:
        check_space(grid, [spec])
    message = assert_one_line(info.value)
    assert "1.3 TB" in message and "500.0 GB free" in message and "100000 x 100000" in message
    small = Grid("EPSG:32631", 0.0, 0.0, 10.0, 10.0, 1000, 1000)
    check_space(small, [spec])  # 256 MB raw fits


def test_write_rasters_checks_space_before_creating_files(tmp_path, monkeypatch):
    grid = Grid("EPSG:32631", 0.0, 0.0, 10.0, 10.0, 50, 40)
    spec = OutputSpec(str(tmp_path / "out.tif"), ("a", "b"))
    monkeypatch.setattr(writer.shutil, "disk_usage", lambda folder: Usage(100, 100, 10))
    with pytest.raises(GeoEmbedError, match="free"):
        writer.write_rasters(grid, [spec], lambda window: pytest.fail("nothing may be produced"))
    assert os.listdir(tmp_path) == []
