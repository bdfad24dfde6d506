"""The panel's review loop driven like a user: the best matches listed, marked right or wrong from the list and on
the map, retrained; the new heatmap (or class map) read back through QGIS's raster provider changes where the marks
said. A query saved from the panel runs again through Processing with QUERY_FILE and gives the same heatmap."""

import numpy as np
import pytest
from qgis.core import QgsProject, QgsRasterLayer
from qgis.PyQt.QtGui import QColor

from geoembed.analysis import query_file
from geoembed.ui.review_list import OPEN, RIGHT, WRONG

from .helpers import provider_values, wait_for
from .test_dock import click, label_cells, layers_named, loaded

__all__ = ["loaded"]  # the fixture of test_dock this module uses

pytest.importorskip("sklearn")  # the class review trains k-nearest neighbours


def cell_of(embeddings, point):
    return embeddings.cell(point)


def marks_on_the_map(review):
    layer = review.marks_layer()
    return sorted((f["mark"], review.points.index(f.geometry().asPoint())) for f in layer.getFeatures())


# --- similarity ------------------------------------------------------------------------------------------


def test_mark_matches_right_and_wrong_then_retrain_changes_the_heatmap_there(dock, loaded):
    layer, embeddings = loaded
    panel, review = dock.similarity_panel, dock.similarity_panel.review
    example = (20, 150)
    panel.k.setValue(1000)  # the fixture's values are constant over patches of a few hundred pixels: many ties at 1
    panel.pick_button.setChecked(True)
    click(panel.tool, dock.canvas, embeddings.centre(*example))
    wait_for(dock.current)
    assert review.count() == 1000
    cells = [cell_of(embeddings, p) for p in review.points]
    expected = embeddings.cosine_to(example)
    np.testing.assert_allclose(review.scores, [expected[c] for c in cells], atol=1e-5)
    assert review.scores[0] == pytest.approx(1.0, abs=1e-6) and review.scores == sorted(review.scores, reverse=True)
    before = provider_values(panel.heatmap())

    # selecting a match pans the map to it
    index = next(i for i, score in enumerate(review.scores) if score < 0.999)  # another patch than the example's
    right = cells[index]
    review.items.setCurrentRow(index)
    assert dock.canvas.center().distance(embeddings.centre(*right)) < embeddings.res_x
    # mark it right by clicking next to it on the map (a quarter pixel off)
    review.map_button.setChecked(True)
    assert dock.canvas.mapTool() is review.tool
    click(review.tool, dock.canvas, embeddings.centre(right[0] + 0.25, right[1] + 0.25))
    assert review.marks == {index: RIGHT} and "right" in review.items.item(index).text()
    assert marks_on_the_map(review) == sorted([(RIGHT, index)] + [(OPEN, i) for i in range(1000) if i != index])
    review.retrain_button.click()
    wait_for(dock.current)
    after_right = provider_values(panel.heatmap())
    assert after_right[right] > before[right]
    np.testing.assert_allclose(after_right[embeddings.valid], embeddings.cosine_to(example, right)[embeddings.valid], atol=1e-5)
    assert layers_named("GeoEmbed examples")[0].featureCount() == 2
    assert review.marks == {}  # the new matches, unmarked

    # mark a new match wrong from the list
    cells = [cell_of(embeddings, p) for p in review.points]
    alike = embeddings.cosine_to(example), embeddings.cosine_to(right)
    index = next(i for i, c in enumerate(cells) if max(alike[0][c], alike[1][c]) < 0.999)  # a third patch
    wrong = cells[index]
    review.items.setCurrentRow(index)
    review.wrong_button.click()
    assert review.marked(WRONG) == [(review.points[index], "")]
    assert (WRONG, index) in marks_on_the_map(review)
    review.retrain_button.click()
    wait_for(dock.current)
    after_wrong = provider_values(panel.heatmap())
    assert after_wrong[wrong] < after_right[wrong] - 0.5
    expected = embeddings.cosine_to(example, right) - embeddings.cosine_to(wrong)
    np.testing.assert_allclose(after_wrong[embeddings.valid], expected[embeddings.valid], atol=1e-5)
    assert layers_named("GeoEmbed counter-examples")[0].featureCount() == 1
    assert wrong not in [cell_of(embeddings, p) for p in review.points]

    # a click on the map far from every match marks nothing
    far = next(
        (r, c) for r in range(0, 250, 50) for c in range(0, 250, 50) if all(abs(r - x) + abs(c - y) > 10 for x, y in cells)
    )
    assert review.toggle_near(embeddings.centre(*far)) is None and review.marks == {}


def test_retrain_without_marks_says_what_to_do(dock, iface, loaded):
    from qgis.core import Qgis

    assert dock.similarity_panel.retrain() is None
    assert any("Mark some" in m for m in iface.messageBar().get_messages(Qgis.MessageLevel.Warning))


def test_saved_query_runs_again_through_processing_bit_for_bit(dock, loaded, tmp_path):
    import processing

    layer, embeddings = loaded
    panel = dock.similarity_panel
    panel.pick_button.setChecked(True)
    click(panel.tool, dock.canvas, embeddings.centre(20, 150))
    wait_for(dock.current)
    click(panel.tool, dock.canvas, embeddings.centre(150, 200), modifiers=_alt())
    wait_for(dock.current)
    heatmap = panel.heatmap().source()
    run = wait_for(panel.save_query(str(tmp_path / "water")))
    assert run.ok, run.message
    saved = tmp_path / "water.geoembed-query.json"
    query = query_file.load(saved)
    assert len(query.examples) == 1 and len(query.counter_examples) == 1
    assert len(query.band_names) == 64 and query.band_names[0].endswith("A00")
    assert query.product == "aef" and query.year == 2024
    np.testing.assert_allclose(query.examples[0], embeddings.values[:, 20, 150], atol=1e-6)
    lon, lat = query.example_lonlat[0]
    assert -180 <= lon <= 180 and -90 <= lat <= 90
    again = tmp_path / "again.tif"
    processing.run("geoembed:similarity", {"INPUT": layer.source(), "QUERY_FILE": str(saved), "OUTPUT": str(again)})
    from osgeo import gdal

    first, second = gdal.Open(heatmap).ReadAsArray(), gdal.Open(str(again)).ReadAsArray()
    assert first.tobytes() == second.tobytes()


def _alt():
    from qgis.PyQt.QtCore import Qt

    return Qt.KeyboardModifier.AltModifier


# --- classification ----------------------------------------------------------------------------------------


def test_review_a_class_then_correct_pixels_and_retrain(dock, loaded):
    layer, embeddings = loaded
    panel = dock.label_panel
    panel.add_class("water", QColor("blue"))
    panel.add_class("forest", QColor("green"))
    water = label_cells(embeddings, 12, 1, (20, 150))
    forest = label_cells(embeddings, 12, 2, (150, 200))
    panel.point_button.setChecked(True)
    for row, cells in ((0, water), (1, forest)):
        panel.class_list.setCurrentRow(row)
        for cell in cells:
            click(panel.point_tool, dock.canvas, embeddings.centre(*cell))
    panel.method.setCurrentIndex(panel.method.findData("knn"))
    run = wait_for(panel.train())
    assert run.ok, run.message
    classes_path, confidence_path, names = panel.trained_outputs
    assert names == ["forest", "water"]
    assert panel.list_button.isEnabled()

    panel.review_class.setCurrentIndex(names.index("water"))
    panel.review_count.setValue(6)
    panel.list_button.click()
    wait_for(panel.listing)
    review = panel.review
    assert review.count() == 6 and review.labels == ["water"] * 6
    classes = provider_values(QgsRasterLayer(classes_path, "c", "gdal"))
    confidence = provider_values(QgsRasterLayer(confidence_path, "p", "gdal"))
    cells = [cell_of(embeddings, p) for p in review.points]
    water_value = names.index("water") + 1
    assert all(classes[c] == water_value for c in cells)
    best = np.sort(confidence[classes == water_value])[::-1][:6]
    np.testing.assert_allclose(review.scores, best, atol=1e-6)

    # the first two are wrong: they are forest; the third is right (a label that stays water)
    assert review.correction.currentText() == "forest"
    for index in (0, 1):
        review.items.setCurrentRow(index)
        review.wrong_button.click()
    review.items.setCurrentRow(2)
    review.right_button.click()
    assert [c for _, c in review.marked(WRONG)] == ["forest", "forest"]
    points = layers_named("GeoEmbed labels (points)")[0]
    count = points.featureCount()
    review.retrain_button.click()
    run = wait_for(dock.current)
    assert run.ok, run.message
    labels = {cell_of(embeddings, f.geometry().asPoint()): f["class"] for f in points.getFeatures()}
    assert labels[cells[0]] == labels[cells[1]] == "forest" and labels[cells[2]] == "water"
    added = sum(1 for c in cells[:3] if c not in water)  # a marked pixel that had a label keeps one label
    assert points.featureCount() == count + added
    new_classes = provider_values(QgsRasterLayer(run.results["OUTPUT"], "c2", "gdal"))
    forest_value = names.index("forest") + 1
    assert new_classes[cells[0]] == forest_value and new_classes[cells[1]] == forest_value
    assert (new_classes == water_value).sum() < (classes == water_value).sum()
    wait_for(panel.listing)  # the retrain lists the reviewed class again
    assert review.count() == 6 and cells[0] not in [cell_of(embeddings, p) for p in review.points]
    assert QgsProject.instance().mapLayersByName("GeoEmbed review (classes)")
