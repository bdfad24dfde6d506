"""PRODUCT=auto on every product layout, and bad input refused with one line and no output."""

import numpy as np
import pytest

from geoembed.loaders.errors import GeoEmbedError
from geoembed.loaders.load import detect_product
from tests.fixtures.fields import geo_metadata, polygon_wkb, with_metadata
from tests.unit.conftest import load, load_error
from tests.unit.helpers import assert_one_line

VALID_IDS = ("aef", "tessera", "clay", "earth-index", "major-tom", "copernicus-embed", "presto", "esd", "generic")

LAYOUTS = {
    # name: (product id, function of the products dict -> SOURCE)
    "tessera download folder": ("tessera", lambda p: p["tessera"]["download_dir"]),
    "tessera source cooperative folder": ("tessera", lambda p: p["tessera"]["sourcecoop_dir"]),
    "tessera npy folder": ("tessera", lambda p: p["tessera"]["sourcecoop_dir"] / "npy" / "v1"),
    "tessera manifest": ("tessera", lambda p: p["tessera"]["manifest"]),
    "tessera npy (download)": ("tessera", lambda p: p["tessera"]["tiles"][0]["npy"]),
    "tessera npy (source cooperative)": ("tessera", lambda p: p["tessera"]["tiles"][2]["sourcecoop_npy"]),
    "tessera geotiff export": ("tessera", lambda p: p["tessera"]["geotiff"]),
    "tessera geotiff folder": ("tessera", lambda p: p["tessera"]["geotiff_dir"]),
    "clay v0 gpq": ("clay", lambda p: p["clay"]["files"]["v0"]["path"]),
    "clay v0 folder": ("clay", lambda p: p["clay"]["files"]["v0"]["path"].parent),
    "clay naip parquet": ("clay", lambda p: p["clay"]["files"]["naip"]["path"]),
    "clay naip folder": ("clay", lambda p: p["clay"]["files"]["naip"]["path"].parent),
    "clay s2 parquet": ("clay", lambda p: p["clay"]["files"]["s2"]["path"]),
    "clay s2 folder": ("clay", lambda p: p["clay"]["files"]["s2"]["path"].parent),
    "clay root": ("clay", lambda p: p["clay"]["files"]["v0"]["path"].parent.parent),
    "earth index polygons file": ("earth-index", lambda p: p["earth-index"]["files"]["polygons"]["path"]),
    "earth index two row groups": ("earth-index", lambda p: p["earth-index"]["files"]["two_row_groups"]["path"]),
    "earth index points file": ("earth-index", lambda p: p["earth-index"]["files"]["points"]["path"]),
    "earth index year folder": ("earth-index", lambda p: p["earth-index"]["dataset_dir"]),
    "earth index points folder": ("earth-index", lambda p: p["earth-index"]["points_dir"]),
    "major tom dinov2 shard": ("major-tom", lambda p: p["major-tom"]["files"]["dinov2_part1"]["path"]),
    "major tom dinov2 folder": ("major-tom", lambda p: p["major-tom"]["datasets"]["dinov2"]["dir"]),
    "major tom ssl4eo shard": ("major-tom", lambda p: p["major-tom"]["files"]["ssl4eo"]["path"]),
    "major tom siglip folder": ("major-tom", lambda p: p["major-tom"]["datasets"]["siglip"]["dir"]),
    "major tom root": ("major-tom", lambda p: p["major-tom"]["datasets"]["siglip"]["dir"].parent.parent),
    "copernicus tif": ("copernicus-embed", lambda p: p["copernicus-embed"]["tif"]),
    "copernicus npz": ("copernicus-embed", lambda p: p["copernicus-embed"]["npz"]),
    "copernicus folder": ("copernicus-embed", lambda p: p["copernicus-embed"]["tif"].parent),
    "presto tif": ("presto", lambda p: p["presto"]["path"]),
    "presto folder": ("presto", lambda p: p["presto"]["path"].parent),
    "esd tif": ("esd", lambda p: p["esd"]["path"]),
    "esd dataset folder": ("esd", lambda p: p["esd"]["dataset_dir"]),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_auto_recognises_every_layout(products, layout):
    product_id, source = LAYOUTS[layout]
    found, reason = detect_product(str(source(products)))
    assert found == product_id, f"{layout}: detected {found} ({reason})"
    assert reason and "\n" not in reason


@pytest.mark.parametrize(
    ("layout", "extent"),
    [
        ("tessera manifest", (5.986, 44.996, 5.994, 45.004)),
        ("clay s2 folder", None),
        ("major tom siglip folder", None),
        ("copernicus npz", (-60.1, -10.1, -57.9, -7.9)),
        ("presto folder", None),
    ],
)
def test_auto_load_names_the_product(products, tmp_path, layout, extent):
    product_id, source = LAYOUTS[layout]
    loaded = load(tmp_path, "auto.tif", source=str(source(products)), extent=extent)
    assert loaded.result.product == product_id
    assert loaded.metadata["GEOEMBED_PRODUCT"] == product_id
    assert any("PRODUCT=auto" in message and f"({product_id})" in message for message in loaded.log.infos), loaded.log.infos


def _random_files(folder):
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    text = folder / "notes.txt"
    text.write_text("not an embedding product\n")
    tiff = _one_band_tiff(folder / "dem.tif")
    npy = folder / "array.npy"
    np.save(npy, np.zeros((4, 4, 3), dtype=np.int8))
    table = folder / "table.parquet"
    pq.write_table(pa.table({"a": [1, 2], "b": ["x", "y"]}), table)
    return {"text": text, "tiff": tiff, "npy": npy, "parquet": table}


def _one_band_tiff(path):
    """A georeferenced one-band raster (a DEM, a heatmap): any raster, but not embeddings."""
    from osgeo import gdal, osr

    dataset = gdal.GetDriverByName("GTiff").Create(str(path), 8, 8, 1, gdal.GDT_Float32)
    dataset.SetGeoTransform((500000.0, 10.0, 0.0, 5000000.0, 0.0, -10.0))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32631)
    dataset.SetProjection(srs.ExportToWkt())
    dataset.GetRasterBand(1).WriteArray(np.arange(64, dtype=np.float32).reshape(8, 8))
    dataset = None
    return path


@pytest.mark.parametrize("kind", ["text", "npy", "parquet"])
def test_auto_refuses_a_random_file(tmp_path, kind):
    files = _random_files(tmp_path / "random")
    with pytest.raises(GeoEmbedError) as info:
        detect_product(str(files[kind]))
    message = assert_one_line(info.value)
    assert all(product_id in message for product_id in VALID_IDS), message
    load_error(tmp_path / "out", source=str(files[kind]))


@pytest.mark.parametrize("kind", ["tiff", "folder"])
def test_auto_refuses_a_one_band_raster_saying_why(tmp_path, kind):
    """Any raster of two or more bands is an embedding raster (the generic product); one band is not embeddings."""
    files = _random_files(tmp_path / "random")
    source = tmp_path / "random" if kind == "folder" else files[kind]
    message = load_error(tmp_path / "out", source=str(source))
    assert "dem.tif" in message and "1 band" in message, message


# --- bad input -----------------------------------------------------------------------------------------------------


def _square(lon, lat, size=0.01):
    return [(lon, lat), (lon + size, lat), (lon + size, lat + size), (lon, lat + size), (lon, lat)]


def _write_patch_parquet(path, column, lengths, lon=10.0, lat=50.0, geo=True):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rings = [_square(lon + 0.01 * i, lat) for i in range(len(lengths))]
    data = {"id": pa.array([f"p{i}" for i in range(len(lengths))])}
    if column:
        data[column] = pa.array([np.linspace(0, 1, n, dtype=np.float32).tolist() for n in lengths], pa.list_(pa.float32()))
    data["geometry"] = pa.array([polygon_wkb(ring) for ring in rings], pa.binary())
    table = pa.table(data)
    if geo:
        table = with_metadata(table, geo=geo_metadata(["Polygon"], rings, crs="OGC:CRS84"))
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


@pytest.mark.parametrize("product", ["clay", "earth-index", "major-tom", "auto"])
@pytest.mark.parametrize("name", ["chips.gpq", "33TWM_2024-01-01_2025-01-01.parquet"])
def test_parquet_without_embedding_column(tmp_path, product, name):
    path = _write_patch_parquet(tmp_path / "in" / name, None, [4, 4, 4])
    for source in (path, path.parent):
        load_error(tmp_path / "out", product=product, source=str(source), extent=(9.99, 49.99, 10.05, 50.02))


@pytest.mark.parametrize(("column", "product"), [("embeddings", "clay"), ("embeddings", "auto"), ("embedding", "earth-index")])
def test_parquet_with_mixed_embedding_lengths(tmp_path, column, product):
    name = "33TWM_2024-01-01_2025-01-01.parquet" if product == "earth-index" else "chips.parquet"
    path = _write_patch_parquet(tmp_path / "in" / name, column, [4, 4, 5, 4])
    message = load_error(tmp_path / "out", product=product, source=str(path), extent=(9.99, 49.99, 10.05, 50.02))
    assert "length" in message


def test_two_clay_variants_of_different_lengths(products, tmp_path):
    """The Clay root holds v0 (768-d) and v1.5 (1024-d) files: without an extent both are read, which must be refused."""
    root = products["clay"]["files"]["v0"]["path"].parent.parent
    message = load_error(tmp_path / "out", product="clay", source=str(root))
    assert "768" in message and "1024" in message


@pytest.mark.parametrize("product", ["nope", "AEF", "earth_index", "copernicus"])
def test_unknown_product_lists_the_valid_ids(products, tmp_path, product):
    message = load_error(tmp_path / "out", product=product, source=str(products["presto"]["path"]))
    assert product in message
    for product_id in VALID_IDS:
        assert product_id in message, f"{product_id} missing from: {message}"


OUTSIDE = (-30.0, -40.0, -29.9, -39.9)  # South Atlantic: no fixture product has data there

SOURCES_FOR_COVERAGE = {
    "tessera": lambda p: p["tessera"]["download_dir"],
    "tessera manifest": lambda p: p["tessera"]["manifest"],
    "clay": lambda p: p["clay"]["files"]["v0"]["path"].parent.parent,
    "earth-index": lambda p: p["earth-index"]["dataset_dir"],
    "major-tom": lambda p: p["major-tom"]["datasets"]["dinov2"]["dir"],
    "presto": lambda p: p["presto"]["path"],
    "esd": lambda p: p["esd"]["dataset_dir"],
}


@pytest.mark.parametrize("product", list(SOURCES_FOR_COVERAGE))
@pytest.mark.parametrize("auto", [False, True])
def test_extent_outside_coverage(products, tmp_path, product, auto):
    product_id = product.split()[0]
    source = SOURCES_FOR_COVERAGE[product](products)
    load_error(tmp_path / "out", product="auto" if auto else product_id, source=str(source), extent=OUTSIDE)


def test_extent_outside_coverage_in_another_crs(products, tmp_path):
    """The same South Atlantic box given in Web Mercator metres."""
    from tests.fixtures.fields import from_lonlat

    xs, ys = from_lonlat("EPSG:3857", [OUTSIDE[0], OUTSIDE[2]], [OUTSIDE[1], OUTSIDE[3]])
    extent = (xs[0], ys[0], xs[1], ys[1])
    for source in (products["esd"]["path"], products["earth-index"]["dataset_dir"]):
        load_error(tmp_path / "out", source=str(source), extent=extent, extent_crs="EPSG:3857")


@pytest.mark.parametrize(("product_id", "key"), [("presto", "path"), ("copernicus-embed", "tif")])
def test_auto_recognises_renamed_files_by_their_header(products, tmp_path, product_id, key):
    """A Presto tile or the Copernicus-Embed map under another name is still told by its bands, CRS and grid."""
    import shutil

    renamed = tmp_path / "renamed.tif"
    shutil.copy(products[product_id][key], renamed)
    found, reason = detect_product(str(renamed))
    assert found == product_id, reason
    extent = (5.1, 44.1, 5.9, 44.9) if product_id == "copernicus-embed" else None
    loaded = load(tmp_path, "out.tif", source=str(renamed), extent=extent)
    assert loaded.result.product == product_id
    assert not np.all(loaded.values == -9999.0)
