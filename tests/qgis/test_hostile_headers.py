"""Hostile inputs whose headers lie, or that are made to exhaust a reader, and servers that never stop sending or stall:
every algorithm refuses each in one line, before any large allocation (tests/qgis/refusals.assert_refused: no output,
under 10 s and 1.5 GB). The limits are in loaders/limits.py; the files are built by tests/support/hostile_files.py
(each in a fraction of a second and a few MB), the servers by tests/support/hostile_server.py.
"""

import zipfile
from pathlib import Path

import numpy as np
import pytest
from qgis.core import QgsFeature, QgsGeometry, QgsPointXY, QgsVectorLayer

from geoembed.loaders.raster import gdal_io
from geoembed.loaders.remote import http_client
from tests.support import hostile_files as hostile
from tests.support.hostile_server import HostileServer

from .refusals import assert_refused

INSIDE = (500005.0, 4999995.0)  # a pixel of the hostile rasters' claimed grid (EPSG:32631)


def _points(*classes):
    memory = QgsVectorLayer("Point?crs=EPSG:32631&field=class:string", "points", "memory")
    features = []
    for index, name in enumerate(classes or ("a",)):
        feature = QgsFeature(memory.fields())
        feature.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(INSIDE[0] + 20 * index, INSIDE[1])))
        feature.setAttributes([name])
        features.append(feature)
    memory.dataProvider().addFeatures(features)
    return memory


class Hostile:
    """Hostile inputs, built on demand in a scratch folder (not the output folder), and the hostile server."""

    def __init__(self, scratch, server, monkeypatch):
        self.scratch, self.server, self.monkeypatch = scratch, server, monkeypatch

    # rasters
    def huge_tif(self):
        return hostile.huge_header_tiff(self.scratch / "huge.tif")

    def many_bands_tif(self):
        return hostile.huge_header_tiff(self.scratch / "many_bands.tif", width=512, height=512)

    def huge_vrt(self):
        return hostile.huge_header_vrt(self.scratch / "huge.vrt", side=10**6, bands=64)

    def bomb_tif(self):
        return hostile.deflate_bomb_tiff(self.scratch / "bomb.tif")

    def truncated_bomb(self):
        return hostile.truncated_copy(self.bomb_tif(), self.scratch / "cut_bomb.tif", 0.001)

    # Tessera .npy tiles
    def tessera(self, embedding):
        return hostile.tessera_tile(self.scratch / "tessera", embedding)

    def giant_npy(self):
        return self.tessera(lambda p: hostile.npy_header_only(p, (10**6, 10**6, 128)))

    def lying_npy(self):
        return self.tessera(lambda p: hostile.npy_header_only(p, (1000, 1000, 128), data=bytes(4096)))

    def truncated_npy(self):
        def build(path):
            np.save(path, np.ones((4, 4, 128), np.int8))
            return hostile.truncated_copy(path, path, 0.6)

        return self.tessera(build)

    def object_npy(self):
        return self.tessera(lambda p: hostile.object_npy(p, self.scratch / "unpickled"))

    # Copernicus-Embed npz
    def lying_npz(self):
        member = self.scratch / "member.npy"
        hostile.npy_header_only(member, (721, 1440, 768), descr="<f4", data=bytes(4096))
        path = self.scratch / "embed_map_310k.npz"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("arr_0.npy", member.read_bytes())
        member.unlink()
        return str(path)

    # GeoParquet
    def wide_parquet(self):
        return hostile.wide_list_parquet(self.scratch / "chips.parquet")

    def fixed_parquet(self):
        return hostile.fixed_width_parquet(self.scratch / "chips.parquet")

    def lying_parquet(self):
        return hostile.lying_rows_parquet(self.scratch / "chips.parquet")

    # servers
    def endless_url(self):
        return self.server.url + "/endless/embeddings.tif"

    def silent_url(self):
        self.monkeypatch.setenv("GEOEMBED_HTTP_TIMEOUT_S", "0.5")
        self.monkeypatch.setattr(http_client, "BACKOFF_S", 0.01)
        return self.server.url + "/silent/embeddings.tif"

    def stalling_gdal_url(self):
        self.monkeypatch.setenv("GEOEMBED_HTTP_TIMEOUT_S", "1")
        self.monkeypatch.setitem(gdal_io.REMOTE_OPTIONS, "GDAL_HTTP_MAX_RETRY", "0")
        self.monkeypatch.setattr(gdal_io, "RETRY_BACKOFF_S", 0.01)
        self.monkeypatch.setattr(gdal_io, "OPEN_RETRIES", 0)
        return self.server.url + "/stall-ranges/embeddings.tif"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from osgeo import gdal

    path = tmp_path_factory.mktemp("served") / "embeddings.tif"
    hostile_tif = gdal.GetDriverByName("GTiff").Create(str(path), 64, 64, 3, gdal.GDT_Float32)
    hostile_tif.FlushCache()
    hostile_tif = None
    with HostileServer(files={"embeddings.tif": Path(path).read_bytes()}) as running:
        yield running


@pytest.fixture()
def inputs(tmp_path, server, monkeypatch):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    return Hostile(scratch, server, monkeypatch)


def _load(source, product="auto"):
    return lambda i, o: {"PRODUCT": product, "SOURCE": source(i), "OUTPUT": o / "e.tif"}


# (algorithm, case, parameters built from (inputs, output folder), words the one-line message must contain)
HOSTILE = [
    # geoembed:load
    ("load", "10^6 x 10^6 px x 10^4 bands", _load(Hostile.huge_tif), ["huge.tif", "1000000 x 1000000 pixels"]),
    ("load", "10^4 bands", _load(Hostile.many_bands_tif), ["many_bands.tif", "10000 bands"]),
    ("load", "VRT of 10^6 x 10^6 px", _load(Hostile.huge_vrt, "generic"), ["huge.vrt", "1000000 x 1000000"]),
    ("load", "deflate bomb in a GeoTIFF tile", _load(Hostile.bomb_tif), ["bomb.tif", "32768 x 32768", "decompressed"]),
    ("load", "truncated deflate bomb", _load(Hostile.truncated_bomb), ["cut_bomb.tif"]),
    ("load", "npy of giant shape", _load(Hostile.giant_npy, "tessera"), ["grid_0.15_45.05.npy", "(1000000, 1000000, 128)"]),
    ("load", "npy claiming more bytes than it holds", _load(Hostile.lying_npy), ["truncated or lying"]),
    ("load", "truncated npy", _load(Hostile.truncated_npy, "tessera"), ["grid_0.15_45.05.npy", "truncated"]),
    ("load", "object npy", _load(Hostile.object_npy, "tessera"), ["Python objects", "never unpickles"]),
    ("load", "npz member claiming 3 GB", _load(Hostile.lying_npz), ["embed_map_310k.npz", "truncated or lying"]),
    ("load", "parquet list of 10^8 values per row", _load(Hostile.wide_parquet, "clay"), ["100000000 values per row"]),
    ("load", "parquet fixed_size_list of 10^5", _load(Hostile.fixed_parquet, "clay"), ["100000 values per row"]),
    ("load", "parquet row group that lies", _load(Hostile.lying_parquet, "clay"), ["chips.parquet", "metadata lies"]),
    ("load", "server that sends forever", _load(Hostile.endless_url), ["embeddings.tif", "larger than"]),
    ("load", "server that never answers", _load(Hostile.silent_url), ["no answer within 0.5 s"]),
    ("load", "server that stalls GDAL's reads", _load(Hostile.stalling_gdal_url), ["Cannot open raster", "embeddings.tif"]),
    # analysis algorithms given such files as INPUT
    (
        "sample",
        "10^6 x 10^6 px INPUT",
        lambda i, o: {"INPUT": i.huge_tif(), "POINTS": _points(), "OUTPUT": o / "s.gpkg"},
        ["huge.tif", "1000000 x 1000000"],
    ),
    (
        "sample",
        "lying npy INPUT",
        lambda i, o: {"INPUT": i.lying_npy(), "POINTS": _points(), "OUTPUT": o / "s.gpkg"},
        ["truncated or lying"],
    ),
    (
        "similarity",
        "deflate bomb INPUT",
        lambda i, o: {"INPUT": i.bomb_tif(), "QUERY": _points(), "OUTPUT": o / "h.tif"},
        ["bomb.tif", "decompressed"],
    ),
    (
        "similarity",
        "INPUT from a server that sends forever",
        lambda i, o: {"INPUT": i.endless_url(), "QUERY": _points(), "OUTPUT": o / "h.tif"},
        ["larger than"],
    ),
    (
        "train",
        "10^4 bands INPUT",
        lambda i, o: {"INPUT": i.many_bands_tif(), "TRAINING": _points("a", "b"), "FIELD": "class", "OUTPUT": o / "c.tif"},
        ["10000 bands"],
    ),
    (
        "resample",
        "VRT of 10^6 x 10^6 px INPUT",
        lambda i, o: {"INPUT": i.huge_vrt(), "RESOLUTION": 20, "OUTPUT": o / "r.tif"},
        ["1000000 x 1000000"],
    ),
    ("pca", "object npy INPUT", lambda i, o: {"INPUT": i.object_npy(), "OUTPUT": o / "p.tif"}, ["Python objects"]),
    ("pca", "parquet row group that lies", lambda i, o: {"INPUT": i.lying_parquet(), "OUTPUT": o / "p.tif"}, ["metadata lies"]),
    ("cluster", "giant npy INPUT", lambda i, o: {"INPUT": i.giant_npy(), "K": 3, "OUTPUT": o / "k.tif"}, ["1000000"]),
    (
        "intrinsicdim",
        "parquet list of 10^8 values",
        lambda i, o: {"INPUT": i.wide_parquet(), "OUTPUT": o / "i.csv"},
        ["100000000 values per row"],
    ),
    (
        "change",
        "INPUT_2 of 10^4 bands",
        lambda i, o: {"INPUT": i.many_bands_tif(), "INPUT_2": i.huge_tif(), "OUTPUT": o / "d.tif"},
        ["bands"],
    ),
    (
        "similarity",
        "INPUT from a server that never answers",
        lambda i, o: {"INPUT": i.silent_url(), "QUERY": _points(), "OUTPUT": o / "h.tif"},
        ["no answer within 0.5 s"],
    ),
]


@pytest.mark.parametrize(("algorithm", "case", "build", "words"), HOSTILE, ids=[f"{a}: {c}" for a, c, _, _ in HOSTILE])
def test_hostile_input_is_refused_in_one_line_before_allocating(inputs, tmp_path, algorithm, case, build, words):
    out = tmp_path / "out"
    out.mkdir()
    parameters = {key: str(value) if hasattr(value, "suffix") else value for key, value in build(inputs, out).items()}
    assert_refused(algorithm, parameters, words, out, case)
    assert not (inputs.scratch / "unpickled").exists()  # an object .npy is never unpickled
