"""geoembed:zonal through `qgis_process.bin`, as a user runs it: a raw AEF tile as INPUT, polygons in a GeoJSON in
lon/lat, a GeoPackage and a GeoParquet out. Expectations: the fixture's int8 codes de-quantised with the published
formula, pixel centres inside each polygon (moved to the tile's UTM zone with pyproj) by a winding-number test,
numpy means. Four qgis_process runs: two that work, two bad inputs.
"""

import json

import numpy as np
import pytest
from osgeo import ogr
from pyproj import Transformer

from tests.e2e.helpers import json_of, leftovers, output_of
from tests.e2e.test_analysis_cli import BANDS, embedding_tile, log_text, run_args, write_points
from tests.support.polygons import inside_polygons, pixel_centres


@pytest.fixture(scope="module")
def tile(aef_mirror, aef_specs, tmp_path_factory):
    return embedding_tile(aef_mirror, aef_specs, tmp_path_factory.mktemp("e2e-zonal"))


def to_lonlat(tile, rings):
    """Pixel-space (col, row) rings of the tile to lon/lat."""
    transform = Transformer.from_crs(f"EPSG:{tile.spec.epsg}", "EPSG:4326", always_xy=True)
    out = []
    for ring in rings:
        xs = [tile.x0 + c * tile.res for c, _ in ring]
        ys = [tile.y0 - r * tile.res for _, r in ring]
        out.append([list(p) for p in zip(*transform.transform(xs, ys))])
    return out


def write_zones(path, zones):
    """GeoJSON (Multi)Polygons in EPSG:4326: zones = {name: [lon/lat ring, ...]} (one ring per part)."""
    features = []
    for name, parts in zones.items():
        closed = [ring + [ring[0]] for ring in parts]
        geometry = (
            {"type": "Polygon", "coordinates": closed}
            if len(closed) == 1
            else {"type": "MultiPolygon", "coordinates": [[ring] for ring in closed]}
        )
        features.append({"type": "Feature", "properties": {"name": name}, "geometry": geometry})
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}), encoding="utf-8")
    return path


def expected(tile, lonlat_parts):
    """(normalised mean, spread, pixels) from the de-quantised tile over the pixel centres inside the parts."""
    to_utm = Transformer.from_crs("EPSG:4326", f"EPSG:{tile.spec.epsg}", always_xy=True)
    rows, cols = tile.shape
    centres = pixel_centres(tile.x0, tile.y0, tile.res, tile.res, cols, rows)
    inside = inside_polygons(*centres, [[list(zip(*to_utm.transform(*zip(*ring))))] for ring in lonlat_parts])
    take = inside & tile.valid
    vectors = tile.values[:, take].T.astype(np.float64)
    if not len(vectors):
        return None, None, 0
    direction = vectors.mean(axis=0) / np.linalg.norm(vectors.mean(axis=0))
    return direction, float(np.mean(1 - vectors @ direction / np.linalg.norm(vectors, axis=1))), len(vectors)


def zones_of(tile):
    row0, row1, col0, col1 = tile.spec.nodata_boxes[0]
    return {
        "across-nodata": to_lonlat(tile, [[(col1 - 8.3, row0 + 5.2), (col1 + 9.6, row0 + 4.1), (col1 + 8.4, row0 + 20.7)]]),
        "field": to_lonlat(tile, [[(150.2, 150.4), (190.3, 151.2), (188.6, 190.7), (152.1, 185.3)]]),
        "overlapping": to_lonlat(tile, [[(170.4, 170.2), (220.3, 171.5), (215.2, 220.6)]]),
        "two-parts": to_lonlat(
            tile, [[(10.2, 150.3), (20.6, 150.2), (20.1, 160.4)], [(250.2, 200.3), (262.6, 201.2), (255.1, 215.4)]]
        ),
        "tiny": to_lonlat(tile, [[(200.1, 100.1), (200.4, 100.2), (200.2, 100.4)]]),
    }


def test_zonal_cli_gpkg_and_geoparquet_from_a_raw_aef_tile(qgis_process, tile, tmp_path):
    import pyarrow.parquet as pq

    zones = zones_of(tile)
    source = write_zones(tmp_path / "zones.geojson", zones)
    out = tmp_path / "out"
    out.mkdir()
    gpkg, parquet = out / "zones.gpkg", out / "zones.parquet"
    completed = qgis_process(*run_args("zonal", INPUT=tile.raw, ZONES=source, OUTPUT=gpkg, OUTPUT_PARQUET=parquet))
    results = json_of(completed)["results"]
    assert results["OUTPUT"] == str(gpkg) and results["OUTPUT_PARQUET"] == str(parquet)
    assert sorted(p.name for p in out.iterdir()) == ["zones.gpkg", "zones.parquet"]
    assert "1 of 5 zones cover no valid pixel" in log_text(completed)
    assert "Traceback" not in output_of(completed)
    dataset = ogr.Open(str(gpkg))  # kept: its layer dies with it
    layer = dataset.GetLayer(0)
    names = [layer.GetLayerDefn().GetFieldDefn(i).GetName() for i in range(layer.GetLayerDefn().GetFieldCount())]
    assert names == ["name", "pixels", "spread", *BANDS]
    table = pq.read_table(parquet).to_pydict()
    seen = set()
    for index, feature in enumerate(layer):
        name = feature.GetField("name")
        seen.add(name)
        mean, spread, pixels = expected(tile, zones[name])
        assert feature.GetField("pixels") == pixels == table["pixels"][index], name
        assert table["name"][index] == name
        if pixels == 0:
            assert all(not feature.IsFieldSet(b) or feature.IsFieldNull(b) for b in BANDS)
            continue
        got = np.array([feature.GetField(b) for b in BANDS])
        assert np.abs(got - mean).max() < 1e-5, name
        assert np.abs(np.array([table[b][index] for b in BANDS]) - mean).max() < 1e-5, name
        assert feature.GetField("spread") == pytest.approx(spread, abs=1e-5), name
    assert seen == set(zones)
    assert expected(tile, zones["tiny"])[2] == 0 and expected(tile, zones["across-nodata"])[2] > 10


def test_zonal_cli_all_touched_counts_the_tiny_polygon(qgis_process, tile, tmp_path):
    zones = {"tiny": zones_of(tile)["tiny"]}
    source = write_zones(tmp_path / "zones.geojson", zones)
    output = tmp_path / "zones.gpkg"
    completed = qgis_process(*run_args("zonal", INPUT=tile.path, ZONES=source, ALL_TOUCHED="true", OUTPUT=output))
    json_of(completed)
    dataset = ogr.Open(str(output))
    feature = next(iter(dataset.GetLayer(0)))
    assert feature.GetField("pixels") == 1
    vector = tile.values[:, 100, 200].astype(np.float64)
    got = np.array([feature.GetField(b) for b in BANDS])
    assert np.abs(got - vector / np.linalg.norm(vector)).max() < 1e-5


@pytest.mark.parametrize("case", ["points-as-zones", "no-overlap"])
def test_zonal_cli_refuses_cleanly(qgis_process, tile, tmp_path, case):
    if case == "points-as-zones":
        source, words = write_points(tmp_path / "points.geojson", [(tile.safe_centres()[0], {"cls": "a"})]), ["ZONES", "polygon"]
    else:
        far = {"far": [[[2.0, 10.0], [2.1, 10.0], [2.1, 10.1]]]}
        source, words = write_zones(tmp_path / "far.geojson", far), ["ZONES", "overlap"]
    out = tmp_path / "out"
    out.mkdir()
    completed = qgis_process(*run_args("zonal", INPUT=tile.path, ZONES=source, OUTPUT=out / "z.gpkg"))
    text = output_of(completed)
    assert completed.returncode != 0, text
    assert [line for line in text.splitlines() if all(w.lower() in line.lower() for w in words)], text
    assert "Traceback" not in text
    assert list(out.iterdir()) == [] and leftovers(tmp_path) == []
