from qgis.core import QgsRasterLayer, QgsApplication, QgsProcessingAlgorithm, QgsProcessingContext, QgsProcessingFeedback

def nrun(params):
    alg = QgsApplication.processingRegistry().createAlgorithmById("geoembed:load")
    ctx = QgsProcessingContext(); fb = QgsProcessingFeedback()
    print(alg.checkParameterValues(params, ctx))
    return QgsProcessingAlgorithm.run(alg, params, ctx, fb, {}, False)

def test_explore(geoembed_provider, index_file, tile_2024_31n, tmp_path, aef_mirror):
    print(QgsProcessingAlgorithm.run.__doc__)
    out = tmp_path / "a.tif"
    r = nrun({"PRODUCT": "aef", "SOURCE": str(index_file), "EXTENT": "5.985,6.02,44.995,45.01 [EPSG:4326]", "YEAR": 2024, "OUTPUT": str(out)})
    print(r)
    lyr = QgsRasterLayer(str(out), "x")
    print(lyr.isValid(), lyr.crs().authid(), lyr.extent().toString(), lyr.bandCount(), lyr.dataProvider().dataType(1))
    print([lyr.bandName(i) for i in (1, 2, 64)])
    dp = lyr.dataProvider()
    print(dp.sourceNoDataValue(1), dp.sourceHasNoDataValue(1))
    print(dp.htmlMetadata()[:3000])
    r = nrun({"PRODUCT": "auto", "SOURCE": str(aef_mirror), "OUTPUT": str(tmp_path / "b.tif")})
    print(r)
    r = nrun({"PRODUCT": "auto", "SOURCE": str(tile_2024_31n[1]), "OUTPUT": str(tmp_path / "c.tif"), "QUICKLOOK": str(tmp_path/"q.png")})
    print(r)
    import os; print(os.listdir(tmp_path))
    assert 0
