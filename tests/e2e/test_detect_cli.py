"""geoembed:similarity then geoembed:detect through `qgis_process.bin`, as a user chains them: the objects' polygons,
burnt back onto the heatmap's grid, are the 8-connected components of the heatmap's pixels at or above the threshold
(labelled here with scipy on the whole heatmap). Two runs that work, one refusal (the embeddings given to detect).
"""

import numpy as np
from osgeo import gdal, ogr
from scipy import ndimage

from tests.e2e.helpers import json_of, leftovers, output_of
from tests.e2e.test_analysis_cli import NODATA, log_text, run_args, tile, write_points  # noqa: F401 - tile: fixture


def test_similarity_then_detect_cli(qgis_process, tile, tmp_path):  # noqa: F811 - the imported fixture
    centres = tile.safe_centres()
    query = write_points(tmp_path / "query.geojson", [(centres[3], {"id": 1})])
    out = tmp_path / "out"
    heat = out / "heat.tif"
    json_of(qgis_process(*run_args("similarity", INPUT=tile.path, QUERY=query, K=0, OUTPUT=heat)))
    dataset = gdal.Open(str(heat))
    scores = dataset.ReadAsArray()
    geotransform = dataset.GetGeoTransform()
    dataset = None
    valid = scores != NODATA
    threshold = float(np.quantile(scores[valid], 0.97))
    objects = out / "objects.gpkg"
    completed = qgis_process(*run_args("detect", INPUT=heat, THRESHOLD=threshold, OUTPUT=objects))
    results = json_of(completed)["results"]
    mask = valid & (scores >= np.float32(threshold))
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), bool))
    assert results["OBJECTS"] == count > 1
    source = ogr.Open(results["OUTPUT"].split("|")[0])
    layer = source.GetLayer(0)
    ranks = [f.GetField("rank") for f in layer]
    assert ranks == list(range(1, count + 1)), "written in rank order"
    target = gdal.GetDriverByName("MEM").Create("", scores.shape[1], scores.shape[0], 1, gdal.GDT_UInt32)
    target.SetGeoTransform(geotransform)
    gdal.RasterizeLayer(target, [1], layer, options=["ATTRIBUTE=rank"])
    burnt = target.ReadAsArray()
    assert np.array_equal(burnt > 0, mask)
    assert np.unique(np.stack([labels[mask], burnt[mask]]), axis=1).shape[1] == count, "one object per component"
    layer.ResetReading()
    best = next(f for f in layer if f.GetField("rank") == 1)
    assert best.GetField("max_score") == np.float32(scores[mask].max())
    assert f"{count} object(s)" in log_text(completed)
    assert leftovers(out) == [] and "Traceback" not in output_of(completed)


def test_detect_cli_refuses_embeddings(qgis_process, tile, tmp_path):  # noqa: F811
    out = tmp_path / "out"
    out.mkdir()
    completed = qgis_process(*run_args("detect", INPUT=tile.path, THRESHOLD=0.5, OUTPUT=out / "objects.gpkg"))
    text = output_of(completed)
    assert completed.returncode != 0
    assert "64 bands" in text and "geoembed:similarity" in text
    assert "Traceback" not in text
    assert list(out.iterdir()) == []
