import os
from osgeo import gdal
from qgis.core import QgsRasterLayer, QgsApplication, QgsProcessingAlgorithm, QgsProcessingContext, QgsProcessingFeedback, QgsPointXY, QgsRaster, QgsProcessingException

def nrun(params):
    alg = QgsApplication.processingRegistry().createAlgorithmById("geoembed:load")
    ctx = QgsProcessingContext(); fb = QgsProcessingFeedback()
    ok, msg = alg.checkParameterValues(params, ctx)
    if not ok: raise QgsProcessingException(msg)
    return QgsProcessingAlgorithm.run(alg, params, ctx, fb, {}, False)

def test_explore(geoembed_provider, index_file, tile_2024_31n, tmp_path, aef_mirror):
    spec, path = tile_2024_31n
    out = tmp_path / "a.tif"
    nrun({"PRODUCT": "auto", "SOURCE": str(path), "OUTPUT": str(out)})
    lyr = QgsRasterLayer(str(out), "x"); dp = lyr.dataProvider()
    north = spec.south + 10*spec.height
    p = QgsPointXY(spec.west + 605, north - 725)
    print(dp.sample(p, 1), dp.identify(p, QgsRaster.IdentifyFormatValue).results()[1])
    print(dp.sample(QgsPointXY(spec.west + 2005, north - 725), 1))
    print("GEOEMBED_PRODUCT" in dp.htmlMetadata())
    bad = tmp_path / "bad.tif"
    ds = gdal.GetDriverByName("GTiff").Create(str(bad), 8, 8, 3, gdal.GDT_Float32); ds.SetGeoTransform((0,1,0,0,0,-1)); ds = None
    for prod in ("aef", "auto"):
      for params in [dict(SOURCE="/nonexistent/folder"), dict(SOURCE="/nonexistent/x1234567890abcdef-0000000000-0000000000.tiff"), dict(SOURCE="/nonexistent/a.tif"), dict(SOURCE=str(bad)),
                   dict(SOURCE=str(index_file), EXTENT="10,10.01,10,10.01 [EPSG:4326]"), dict(SOURCE=str(index_file), EXTENT="5.985,6.02,44.995,45.01 [EPSG:4326]", YEAR=2031),
                   dict(SOURCE=str(index_file)), dict(SOURCE=str(aef_mirror)), dict(SOURCE=str(index_file), PRODUCT="nope")]:
        params = {"PRODUCT": prod, **params, "OUTPUT": str(tmp_path / "o" / "e.tif")}
        try:
            nrun(params); print("NO ERROR", params)
        except QgsProcessingException as e:
            print(prod, repr(str(e)), e.args)
        print(os.listdir(tmp_path / "o") if (tmp_path / "o").exists() else None)
    assert 0
