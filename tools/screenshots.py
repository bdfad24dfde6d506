"""Redraw the README's screenshots of issue 14 with QGIS, headless.

    QT_QPA_PLATFORM=offscreen .venv/bin/python tools/screenshots.py [OUT_DIR]   (after ./dev.sh setup)

Both pictures come from a made-up AlphaEarth mirror (tests/fixtures/aef.py) of a town growing outwards, one ring a
year from 2020 to 2024, loaded with geoembed:load YEARS=2019-2024:
- trajectory_break_year.png: geoembed:trajectory's break year, in the style it is loaded with, and its legend;
- review_list.png: a similarity heatmap with its best matches marked right (green) and wrong (red), beside the
  panel's review list.
"""

import math
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "images"
YEARS = range(2019, 2025)
SCALE = 2  # screen pixels per raster pixel


def town_mirror(root):
    """An AEF mirror of one tile per year (a pixel turns urban the year the town reaches it) and the tile's extent
    inside its edge as (xmin, xmax, ymin, ymax) in EPSG:32631."""
    import numpy as np

    from tests.fixtures import aef

    plain = aef.embedding_at
    west, south = aef.sample_specs()[0].west, aef.sample_specs()[0].south
    specs = [aef.TileSpec(year, "31N", west, south, 256, 256) for year in YEARS]
    lon0, lat0 = _lonlat(west + 1280, south + 1280)
    urban = plain(np.array(0.0), np.array(0.0)).reshape(64, 1, 1)  # one vector all built pixels lean towards
    waves = np.random.default_rng(14).uniform(4e3, 1.6e4, (2, 64, 1, 1))

    def town(lon, lat, year=2024):
        dx, dy = (lon - lon0) * math.cos(math.radians(lat0)), lat - lat0
        reach = np.hypot(dx, dy) * (1 + 0.25 * np.sin(3 * np.arctan2(dy, dx))) / 0.0125  # 0 at the centre, ~1 at the edge
        built = year >= 2020 + (reach * 4).clip(0, 4).astype(int)
        speckle = 0.25 * np.sin(waves[0] * lon + waves[1] * lat)  # pixel to pixel differences, as real data has
        built_vector = urban + 0.3 * plain(lon + 0.5, lat + 0.5) + speckle
        built_vector /= np.linalg.norm(built_vector, axis=0, keepdims=True)
        return np.where(built, built_vector, plain(lon, lat))

    aef.embedding_at = town
    try:
        return aef.build_mirror(root, specs), (west + 10, west + 2550, south + 10, south + 2550)
    finally:
        aef.embedding_at = plain


def _lonlat(x, y):
    from pyproj import Transformer

    return Transformer.from_crs("EPSG:32631", "EPSG:4326", always_xy=True).transform(x, y)


def render(layers, extent, size):
    """The layers (top first) drawn over extent into a QImage of size (width, height)."""
    from qgis.core import QgsMapRendererParallelJob, QgsMapSettings
    from qgis.PyQt.QtCore import QSize
    from qgis.PyQt.QtGui import QColor

    settings = QgsMapSettings()
    settings.setLayers(layers)
    settings.setDestinationCrs(layers[-1].crs())
    settings.setOutputSize(QSize(*size))
    settings.setExtent(extent)
    settings.setBackgroundColor(QColor("white"))
    job = QgsMapRendererParallelJob(settings)
    job.start()
    job.waitForFinished()
    return job.renderedImage()


def side_by_side(left, right, background="white"):
    from qgis.PyQt.QtGui import QColor, QImage, QPainter

    image = QImage(left.width() + right.width(), max(left.height(), right.height()), QImage.Format.Format_RGB32)
    image.fill(QColor(background))
    painter = QPainter(image)
    painter.drawImage(0, 0, left)
    painter.drawImage(left.width(), 0, right)
    painter.end()
    return image


def legend(classes, height):
    """A white strip listing (colour, label) pairs."""
    from qgis.PyQt.QtGui import QColor, QFont, QImage, QPainter

    image = QImage(150, height, QImage.Format.Format_RGB32)
    image.fill(QColor("white"))
    painter = QPainter(image)
    painter.setFont(QFont("DejaVu Sans", 11))
    painter.drawText(16, 30, "break year")
    for row, (colour, label) in enumerate(classes):
        top = 48 + 28 * row
        painter.fillRect(16, top, 22, 18, colour)
        painter.drawText(48, top + 15, label)
    painter.end()
    return image


def break_year_picture(years_dir, runner):
    from qgis.core import QgsRasterLayer

    inputs = [str(years_dir / f"aef_{year}.tif") for year in YEARS]
    result = runner.run(
        "geoembed:trajectory",
        {"INPUT": inputs, "OUTPUT": str(years_dir / "distances.tif"), "OUTPUT_BREAK_YEAR": str(years_dir / "break.tif")},
    )
    layer = QgsRasterLayer(result["OUTPUT_BREAK_YEAR"], "break year")  # its default style: the one QGIS shows
    size = (layer.width() * SCALE, layer.height() * SCALE)
    years = [(c.color, c.label) for c in layer.renderer().classes()]
    return side_by_side(render([layer], layer.extent(), size), legend(years, size[1]))


def review_picture(years_dir, runner):
    """The heatmap of three examples in the town; its 12 best matches in the review list, some of them marked."""
    from qgis.core import QgsPointXY, QgsProject, QgsRasterLayer, QgsVectorLayer
    from qgis.gui import QgsMapCanvas
    from qgis.PyQt.QtCore import QCoreApplication

    from geoembed.providers.styles import apply_ramp
    from geoembed.ui.layers import add_point
    from geoembed.ui.review_list import RIGHT, WRONG, ReviewList

    raster = QgsRasterLayer(str(years_dir / "aef_2022.tif"), "AEF 2022")
    centre = raster.extent().center()
    example = QgsVectorLayer(f"Point?crs={raster.crs().authid()}", "examples", "memory")
    for dx, dy in ((-300, 200), (250, 150), (0, -300)):  # three examples in the town
        add_point(example, QgsPointXY(centre.x() + dx, centre.y() + dy))
    result = runner.run(
        "geoembed:similarity",
        {"INPUT": raster, "QUERY": example, "K": 12, "OUTPUT": str(years_dir / "heatmap.tif"), "OUTPUT_MATCHES": "memory:"},
    )
    heatmap = QgsRasterLayer(result["OUTPUT"], "heatmap")
    apply_ramp(heatmap, -1.0, 1.0)
    matches = result["OUTPUT_MATCHES"]
    matches = matches if isinstance(matches, QgsVectorLayer) else runner.context.getMapLayer(matches)
    features = sorted(matches.getFeatures(), key=lambda f: f["rank"])

    class Panel:  # what the review list needs of the dock panel
        canvas = QgsMapCanvas()

    review = ReviewList(Panel(), "GeoEmbed review (similarity)")
    review.set_matches([f.geometry().asPoint() for f in features], [f["score"] for f in features], raster.crs())
    for index, mark in ((0, RIGHT), (1, RIGHT), (3, WRONG), (4, RIGHT), (7, WRONG)):
        review.mark(index, mark)
    review.items.setCurrentRow(4)
    marks = QgsProject.instance().mapLayer(review.layer_id)
    size = (raster.width() * SCALE, raster.height() * SCALE)
    review.resize(300, size[1])
    review.show()
    QCoreApplication.processEvents()
    return side_by_side(render([marks, heatmap], raster.extent(), size), review.grab().toImage())


class Runner:
    """processing.run with one context kept, so memory outputs can be looked up afterwards."""

    def __init__(self):
        import processing
        from qgis.core import QgsProcessingContext, QgsProcessingFeedback, QgsProject

        self.context = QgsProcessingContext()
        self.context.setProject(QgsProject.instance())
        self._run, self._feedback = processing.run, QgsProcessingFeedback()

    def run(self, algorithm, parameters):
        return self._run(algorithm, parameters, context=self.context, feedback=self._feedback)


def main():
    sys.path[:0] = [str(ROOT / "build" / "plugins"), str(ROOT)]
    from qgis.core import QgsApplication

    app = QgsApplication([], True)
    app.initQgis()
    sys.path.append(str(Path(QgsApplication.pkgDataPath()) / "python" / "plugins"))
    from processing.core.Processing import Processing

    from geoembed import classFactory

    Processing.initialize()
    plugin = classFactory(None)  # registers the provider, as qgis_process does
    plugin.initProcessing()
    runner = Runner()
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        annual, (west, east, south, north) = town_mirror(scratch / "mirror")
        runner.run(
            "geoembed:load",
            {
                "SOURCE": str(annual),
                "YEARS": f"{YEARS[0]}-{YEARS[-1]}",
                "EXTENT": f"{west},{east},{south},{north} [EPSG:32631]",
                "OUTPUT": str(scratch / "aef.tif"),
            },
        )
        for name, picture in (("trajectory_break_year", break_year_picture), ("review_list", review_picture)):
            path = OUT / f"{name}.png"
            assert picture(scratch, runner).save(str(path)), f"could not write {path}"
            print(path)
    plugin.unload()
    app.exitQgis()


if __name__ == "__main__":
    main()
