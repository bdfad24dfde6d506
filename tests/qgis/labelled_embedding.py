"""A small GeoEmbed layer (geoembed:load of the fixture mirror) and a grid of labelled points on it: three classes by
position, 9 x 7 points. Shared by the tests that train on it (test_hostile_models, test_train_fast_methods)."""

import numpy as np
from osgeo import gdal
from qgis.core import QgsFeature, QgsGeometry, QgsPointXY, QgsVectorLayer

from .refusals import run

EXTENT = "5.975,6.02,44.99,45.02 [EPSG:4326]"


def load_labelled(aef_mirror, folder):
    """{"path": the loaded layer, "crs": its CRS, "points": [((x, y), class name)] at pixel centres}."""
    output = folder / "embeddings.tif"
    run("load", {"SOURCE": str(aef_mirror), "YEAR": 2024, "EXTENT": EXTENT, "OUTPUT": str(output)})
    dataset = gdal.Open(str(output))
    x0, res, _, y0, _, _ = dataset.GetGeoTransform()
    width, height = dataset.RasterXSize, dataset.RasterYSize
    crs = f"EPSG:{dataset.GetSpatialRef().GetAuthorityCode(None)}"
    dataset = None
    points = []
    for i, col in enumerate(np.linspace(10, width - 10, 9).astype(int)):
        for j, row in enumerate(np.linspace(10, height - 10, 7).astype(int)):
            points.append(((x0 + (col + 0.5) * res, y0 - (row + 0.5) * res), "abc"[(i // 3 + j) % 3]))
    return {"path": str(output), "crs": crs, "points": points}


def labels_layer(embedding):
    """The points of load_labelled as a memory point layer with a text field `class`."""
    memory = QgsVectorLayer(f"Point?crs={embedding['crs']}&field=class:string", "labels", "memory")
    features = []
    for (x, y), name in embedding["points"]:
        feature = QgsFeature(memory.fields())
        feature.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(x, y)))
        feature.setAttributes([name])
        features.append(feature)
    memory.dataProvider().addFeatures(features)
    return memory
