"""Every bad input tried, per algorithm, and the one line each gets: a QgsProcessingException whose message names the
problem and what to do, no traceback, and nothing left in the output folder.

The table BAD_INPUTS is the list the README's "Limits and errors" section summarises. The same inputs through
qgis_process (exit code, no traceback) are covered in tests/e2e/test_errors.py and test_bad_inputs_cli.py.
"""

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsApplication, QgsFeature, QgsGeometry, QgsPointXY, QgsVectorLayer

from tests.fixtures.rasters import write_not_aef_tiff

from .refusals import assert_refused, run

EXTENT = "5.975,6.02,44.99,45.02 [EPSG:4326]"


# --- inputs -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def embedding(provider_ready, aef_mirror, tmp_path_factory):
    """A GeoEmbed layer (geoembed:load over two zones) and facts about its grid."""
    output = tmp_path_factory.mktemp("bad-inputs") / "embeddings.tif"
    run("load", {"SOURCE": str(aef_mirror), "YEAR": 2024, "EXTENT": EXTENT, "OUTPUT": str(output)})
    dataset = gdal.Open(str(output))
    x0, res, _, y0, _, _ = dataset.GetGeoTransform()
    facts = {
        "path": str(output),
        "crs": dataset.GetSpatialRef().GetAuthorityCode(None),
        "inside": (x0 + 20.5 * res, y0 - 20.5 * res),
        "inside_2": (x0 + 300.5 * res, y0 - 200.5 * res),
        "metadata": dataset.GetMetadata(),
        "size": (dataset.RasterXSize, dataset.RasterYSize),
        "geotransform": dataset.GetGeoTransform(),
        "wkt": dataset.GetProjection(),
    }
    dataset = None
    return facts


def _like(embedding, path, bands, fill):
    """A GeoEmbed-tagged Float32 GeoTIFF on the embedding's grid with `bands` bands all equal to fill."""
    width, height = embedding["size"]
    dataset = gdal.GetDriverByName("GTiff").Create(str(path), width, height, bands, gdal.GDT_Float32, ["TILED=YES"])
    dataset.SetGeoTransform(embedding["geotransform"])
    dataset.SetProjection(embedding["wkt"])
    dataset.SetMetadata(embedding["metadata"])
    for index in range(bands):
        band = dataset.GetRasterBand(index + 1)
        band.SetDescription(f"B{index:02d}")
        band.SetNoDataValue(-9999.0)
        band.Fill(fill)
    dataset = None
    return str(path)


def layer(geometry_type, crs, rows, fields=("class",)):
    """A memory layer: rows are (geometry, attributes); geometry a (x, y) point or a WKT string."""
    spec = f"{geometry_type}?crs={crs}" + "".join(f"&field={name}:string" for name in fields)
    memory = QgsVectorLayer(spec, "bad", "memory")
    features = []
    for geometry, attributes in rows:
        feature = QgsFeature(memory.fields())
        feature.setGeometry(
            QgsGeometry.fromWkt(geometry) if isinstance(geometry, str) else QgsGeometry.fromPointXY(QgsPointXY(*geometry))
        )
        feature.setAttributes(list(attributes))
        features.append(feature)
    memory.dataProvider().addFeatures(features)
    return memory


class Inputs:
    """Bad (and good) inputs, built on demand in a scratch folder that is not the output folder."""

    def __init__(self, embedding, aef_mirror, scratch):
        self.e, self.mirror, self.scratch = embedding, aef_mirror, scratch

    @property
    def crs(self):
        return f"EPSG:{self.e['crs']}"

    def raster(self):
        return self.e["path"]

    def missing(self):
        return str(self.scratch / "no" / "such.tif")

    def truncated_tif(self):
        path = self.scratch / "truncated.tif"
        data = Path(self.e["path"]).read_bytes()
        path.write_bytes(data[: len(data) // 3])
        return str(path)

    def truncated_tile(self):
        """The first half of a real (fixture) AEF tile in its published folder layout."""
        tile = next(self.mirror.glob("v1/annual/2024/31N/*.tiff"))
        path = self.scratch / "v1" / "annual" / "2024" / "31N" / tile.name
        path.parent.mkdir(parents=True)
        data = tile.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        return str(path)

    def garbage_tif(self):
        path = self.scratch / "garbage.tif"
        path.write_text("this is not a GeoTIFF\n")
        return str(path)

    def three_band_tif(self):
        return str(write_not_aef_tiff(self.scratch / "three_bands.tif"))

    def eight_band_tif(self):
        return _like(self.e, self.scratch / "eight_bands.tif", 8, 0.1)

    def nan_tif(self):
        return _like(self.e, self.scratch / "nan.tif", 64, float("nan"))

    def truncated_parquet(self):
        from tests.fixtures.clay import v0_chips, write_v0

        path = self.scratch / "clay_v0.gpq"
        write_v0(path, v0_chips())
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        return str(path)

    def points(self, *where, crs=None):
        return layer("Point", crs or self.crs, [(self.e[w] if isinstance(w, str) else w, ["a"]) for w in where])

    def empty_points(self):
        return layer("Point", self.crs, [])

    def points_in_wrong_crs(self):
        return layer("Point", "EPSG:4326", [(self.e["inside"], ["a"])])  # UTM metres read as degrees

    def outside_points(self):
        return self.points((100.0, 100.0))

    def outside_labels(self):
        return layer("Point", self.crs, [((100.0, 100.0), ["a"]), ((200.0, 200.0), ["b"])])

    def bow_tie(self):
        x, y = self.e["inside"]
        wkt = f"POLYGON(({x} {y}, {x + 100} {y - 100}, {x + 100} {y}, {x} {y - 100}, {x} {y}))"
        return layer("Polygon", self.crs, [(wkt, ["a"])])

    def labels(self, *classes):
        where = ["inside", "inside_2"]
        return layer("Point", self.crs, [(self.e[where[i % 2]], [c]) for i, c in enumerate(classes)])

    def model_for_other_bands(self, out):
        """A model trained on the eight-band raster (whose bands differ from the embedding's)."""
        eight = self.eight_band_tif()
        path = self.scratch / "eight_band_model.npz"
        run(
            "train",
            {
                "INPUT": eight,
                "TRAINING": self.labels("a", "b", "a", "b"),
                "FIELD": "class",
                "METHOD": "nearest_centroid",
                "OUTPUT": str(self.scratch / "eight_classes.tif"),
                "OUTPUT_MODEL": str(path),
            },
        )
        return str(path)

    def garbage_model(self):
        path = self.scratch / "garbage.pkl"
        path.write_bytes(pickle.dumps({"not": "a model"}))
        return str(path)


@pytest.fixture()
def inputs(embedding, aef_mirror, tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    return Inputs(embedding, aef_mirror, scratch)


# --- the table ----------------------------------------------------------------------------------------------
# (algorithm, case, parameters built from (inputs, output folder), words the one-line message must contain)

BAD_INPUTS = [
    # geoembed:load
    ("load", "missing SOURCE", lambda i, o: {"SOURCE": i.missing(), "OUTPUT": o / "e.tif"}, ["does not exist"]),
    (
        "load",
        "wrong product",
        lambda i, o: {"PRODUCT": "aef", "SOURCE": i.three_band_tif(), "OUTPUT": o / "e.tif"},
        ["64 signed"],
    ),
    (
        "load",
        "wrong dtype for the product",
        lambda i, o: {"PRODUCT": "aef", "SOURCE": i.raster(), "OUTPUT": o / "e.tif"},
        ["Float32"],
    ),
    (
        "load",
        "truncated AEF tile",
        lambda i, o: {"PRODUCT": "aef", "SOURCE": i.truncated_tile(), "OUTPUT": o / "e.tif"},
        ["Cannot"],
    ),
    ("load", "not a TIFF", lambda i, o: {"SOURCE": i.garbage_tif(), "OUTPUT": o / "e.tif"}, ["garbage.tif"]),
    (
        "load",
        "truncated parquet",
        lambda i, o: {"PRODUCT": "clay", "SOURCE": i.truncated_parquet(), "OUTPUT": o / "e.tif"},
        ["clay_v0", "download them again"],
    ),
    (
        "load",
        "extent outside coverage",
        lambda i, o: {"SOURCE": str(i.mirror), "EXTENT": "10,10.01,10,10.01 [EPSG:4326]", "OUTPUT": o / "e.tif"},
        ["No AEF tile covers"],
    ),
    (
        "load",
        "extent across the antimeridian",
        lambda i, o: {"SOURCE": str(i.mirror), "EXTENT": "179.5,-179.5,-17,-16 [EPSG:4326]", "OUTPUT": o / "e.tif"},
        ["antimeridian"],
    ),
    (
        "load",
        "year without tiles",
        lambda i, o: {"SOURCE": str(i.mirror), "EXTENT": EXTENT, "YEAR": 2031, "OUTPUT": o / "e.tif"},
        ["2031"],
    ),
    (
        "load",
        "negative RESOLUTION",
        lambda i, o: {"SOURCE": str(i.mirror), "EXTENT": EXTENT, "RESOLUTION": -5, "OUTPUT": o / "e.tif"},
        ["RESOLUTION"],
    ),
    ("load", "output not a GeoTIFF", lambda i, o: {"SOURCE": str(i.mirror), "EXTENT": EXTENT, "OUTPUT": o / "e.png"}, [".tif"]),
    # geoembed:sample
    (
        "sample",
        "missing INPUT",
        lambda i, o: {"INPUT": i.missing(), "POINTS": i.points("inside"), "OUTPUT": o / "s.gpkg"},
        ["exist"],
    ),
    (
        "sample",
        "truncated INPUT",
        lambda i, o: {"INPUT": i.truncated_tif(), "POINTS": i.points("inside"), "OUTPUT": o / "s.gpkg"},
        ["truncated"],
    ),
    (
        "sample",
        "empty POINTS",
        lambda i, o: {"INPUT": i.raster(), "POINTS": i.empty_points(), "OUTPUT": o / "s.gpkg"},
        ["no points"],
    ),
    (
        "sample",
        "POINTS in the wrong CRS",
        lambda i, o: {"INPUT": i.raster(), "POINTS": i.points_in_wrong_crs(), "OUTPUT": o / "s.gpkg"},
        ["check the layer's CRS"],
    ),
    (
        "sample",
        "NaN everywhere",
        lambda i, o: {"INPUT": i.nan_tif(), "POINTS": i.points("inside"), "OUTPUT": o / "s.gpkg"},
        ["valid"],
    ),
    # geoembed:similarity
    (
        "similarity",
        "empty QUERY",
        lambda i, o: {"INPUT": i.raster(), "QUERY": i.empty_points(), "OUTPUT": o / "h.tif"},
        ["QUERY"],
    ),
    (
        "similarity",
        "QUERY outside INPUT",
        lambda i, o: {"INPUT": i.raster(), "QUERY": i.outside_points(), "OUTPUT": o / "h.tif"},
        ["overlap"],
    ),
    (
        "similarity",
        "invalid polygon QUERY",
        lambda i, o: {"INPUT": i.raster(), "QUERY": i.bow_tie(), "OUTPUT": o / "h.tif"},
        ["invalid"],
    ),
    (
        "similarity",
        "NaN everywhere",
        lambda i, o: {"INPUT": i.nan_tif(), "QUERY": i.points("inside"), "OUTPUT": o / "h.tif"},
        ["valid"],
    ),
    (
        "similarity",
        "not a TIFF",
        lambda i, o: {"INPUT": i.garbage_tif(), "QUERY": i.points("inside"), "OUTPUT": o / "h.tif"},
        ["garbage"],
    ),
    # geoembed:train
    (
        "train",
        "class field missing",
        lambda i, o: {"INPUT": i.raster(), "TRAINING": i.labels("a", "b"), "FIELD": "landcover", "OUTPUT": o / "c.tif"},
        ["landcover"],
    ),
    (
        "train",
        "single class",
        lambda i, o: {"INPUT": i.raster(), "TRAINING": i.labels("a", "a"), "FIELD": "class", "OUTPUT": o / "c.tif"},
        ["single class"],
    ),
    (
        "train",
        "empty TRAINING",
        lambda i, o: {"INPUT": i.raster(), "TRAINING": i.empty_points(), "FIELD": "class", "OUTPUT": o / "c.tif"},
        ["TRAINING"],
    ),
    (
        "train",
        "TRAINING outside INPUT",
        lambda i, o: {"INPUT": i.raster(), "TRAINING": i.outside_labels(), "FIELD": "class", "OUTPUT": o / "c.tif"},
        ["overlap"],
    ),
    # geoembed:classify
    (
        "classify",
        "model for other bands",
        lambda i, o: {"INPUT": i.raster(), "MODEL": i.model_for_other_bands(o), "OUTPUT": o / "c.tif"},
        ["bands"],
    ),
    ("classify", "missing MODEL", lambda i, o: {"INPUT": i.raster(), "MODEL": i.missing(), "OUTPUT": o / "c.tif"}, ["exist"]),
    (
        "classify",
        "not a model (a pickle: never opened)",
        lambda i, o: {"INPUT": i.raster(), "MODEL": i.garbage_model(), "OUTPUT": o / "c.tif"},
        ["model", "pickle", "not opened"],
    ),
    # geoembed:resample
    ("resample", "RESOLUTION 0", lambda i, o: {"INPUT": i.raster(), "RESOLUTION": 0, "OUTPUT": o / "r.tif"}, ["RESOLUTION"]),
    (
        "resample",
        "aggregate onto a finer grid",
        lambda i, o: {"INPUT": i.raster(), "MODE": "aggregate", "RESOLUTION": 5, "OUTPUT": o / "r.tif"},
        ["nearest"],
    ),
    (
        "resample",
        "missing REFERENCE",
        lambda i, o: {"INPUT": i.raster(), "REFERENCE": i.missing(), "OUTPUT": o / "r.tif"},
        ["REFERENCE", "does not exist"],
    ),
    # geoembed:pca
    (
        "pca",
        "missing MODEL_IN",
        lambda i, o: {"INPUT": i.raster(), "MODEL_IN": i.missing(), "OUTPUT": o / "p.tif"},
        ["does not exist"],
    ),
    ("pca", "NaN everywhere", lambda i, o: {"INPUT": i.nan_tif(), "OUTPUT": o / "p.tif"}, ["valid"]),
    # geoembed:cluster
    ("cluster", "NaN everywhere", lambda i, o: {"INPUT": i.nan_tif(), "K": 3, "OUTPUT": o / "k.tif"}, ["valid"]),
    ("cluster", "truncated INPUT", lambda i, o: {"INPUT": i.truncated_tif(), "K": 3, "OUTPUT": o / "k.tif"}, ["truncated"]),
    # geoembed:change
    (
        "change",
        "rasters with other bands",
        lambda i, o: {"INPUT": i.raster(), "INPUT_2": i.eight_band_tif(), "OUTPUT": o / "d.tif"},
        ["band"],
    ),
    ("change", "missing INPUT_2", lambda i, o: {"INPUT": i.raster(), "INPUT_2": i.missing(), "OUTPUT": o / "d.tif"}, ["exist"]),
    # geoembed:compare
    (
        "compare",
        "single class",
        lambda i, o: {
            "INPUT": i.raster(),
            "INPUT_2": i.raster(),
            "TRAINING": i.labels("a", "a"),
            "FIELD": "class",
            "OUTPUT": o / "t.csv",
        },
        ["single class"],
    ),
    (
        "compare",
        "class field missing",
        lambda i, o: {
            "INPUT": i.raster(),
            "INPUT_2": i.raster(),
            "TRAINING": i.labels("a", "b"),
            "FIELD": "landcover",
            "OUTPUT": o / "t.csv",
        },
        ["landcover"],
    ),
    # geoembed:intrinsicdim
    ("intrinsicdim", "NaN everywhere", lambda i, o: {"INPUT": i.nan_tif(), "OUTPUT": o / "i.csv"}, ["valid"]),
    ("intrinsicdim", "not a TIFF", lambda i, o: {"INPUT": i.garbage_tif(), "OUTPUT": o / "i.csv"}, ["garbage"]),
    # geoembed:zonal
    (
        "zonal",
        "points as ZONES",
        lambda i, o: {"INPUT": i.raster(), "ZONES": i.points("inside"), "OUTPUT": o / "z.gpkg"},
        ["ZONES", "polygon"],
    ),
    ("zonal", "missing INPUT", lambda i, o: {"INPUT": i.missing(), "ZONES": i.bow_tie(), "OUTPUT": o / "z.gpkg"}, ["exist"]),
    # geoembed:detect
    (
        "detect",
        "embeddings, not a score",
        lambda i, o: {"INPUT": i.raster(), "THRESHOLD": 0.5, "OUTPUT": o / "d.gpkg"},
        ["similarity"],
    ),
    ("detect", "not a TIFF", lambda i, o: {"INPUT": i.garbage_tif(), "THRESHOLD": 0.5, "OUTPUT": o / "d.gpkg"}, ["garbage"]),
    # geoembed:regress
    (
        "regress",
        "text field",
        lambda i, o: {"INPUT": i.raster(), "TRAINING": i.labels("a", "b"), "FIELD": "class", "OUTPUT": o / "v.tif"},
        ["FIELD", "numeric"],
    ),
    (
        "regress",
        "a pickle as MODEL",
        lambda i, o: {"INPUT": i.raster(), "MODEL": i.garbage_model(), "OUTPUT": o / "v.tif"},
        ["pickle"],
    ),
    # geoembed:transitions
    (
        "transitions",
        "an embedding as class map",
        lambda i, o: {"INPUT": i.raster(), "INPUT_2": i.raster(), "OUTPUT": o / "t.tif"},
        ["class map"],
    ),
    (
        "transitions",
        "not a TIFF",
        lambda i, o: {"INPUT": i.garbage_tif(), "INPUT_2": i.garbage_tif(), "OUTPUT": o / "t.tif"},
        ["garbage"],
    ),
    # geoembed:trajectory
    ("trajectory", "one year", lambda i, o: {"INPUT": [i.raster()], "OUTPUT": o / "t.tif"}, ["two"]),
    (
        "trajectory",
        "other bands",
        lambda i, o: {"INPUT": [i.raster(), i.eight_band_tif()], "OUTPUT": o / "t.tif"},
        ["bands"],
    ),
]


@pytest.mark.parametrize(("algorithm", "case", "build", "words"), BAD_INPUTS, ids=[f"{a}: {c}" for a, c, _, _ in BAD_INPUTS])
def test_bad_input_gets_one_line_and_leaves_nothing(inputs, tmp_path, algorithm, case, build, words):
    out = tmp_path / "out"
    out.mkdir()
    parameters = {key: _as_parameter(value) for key, value in build(inputs, out).items()}
    leftover_scratch = set(inputs.scratch.iterdir())
    assert_refused(algorithm, parameters, words, out, case)
    assert set(inputs.scratch.iterdir()) == leftover_scratch  # inputs are never modified or added to
    shutil.rmtree(inputs.scratch)


def _as_parameter(value):
    """Paths as strings, in lists too (multiple-layer inputs), as processing.run takes them."""
    if isinstance(value, list):
        return [_as_parameter(item) for item in value]
    return str(value) if hasattr(value, "suffix") else value


def test_the_table_covers_every_algorithm():
    registry = QgsApplication.processingRegistry()
    provider = registry.providerById("geoembed")
    covered = {algorithm for algorithm, _, _, _ in BAD_INPUTS}
    checked_elsewhere = {"catalog"}  # no file inputs; its EXTENT/CRS errors are in test_catalog.py
    names = {a.name() for a in provider.algorithms()}
    assert names - covered - checked_elsewhere == set()


def test_nan_raster_fixture_really_is_nan(inputs):
    dataset = gdal.Open(inputs.nan_tif())
    assert np.isnan(dataset.GetRasterBand(1).ReadAsArray()).all()
