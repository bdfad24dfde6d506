"""QUICKLOOK: a PCA false-colour PNG rendered by QGIS, transparent where the embeddings are nodata."""

import pytest
from qgis.PyQt.QtGui import QColor, QImage

from .helpers import RUNNERS


def image_pixel(image, spec, x, y):
    """Image pixel of a map position of the tile (the quicklook covers exactly the tile here)."""
    west, south, east, north = spec.bounds
    col = int((x - west) / (east - west) * image.width())
    row = int((north - y) / (north - south) * image.height())
    return QColor.fromRgba(image.pixel(col, row))


@pytest.mark.parametrize("runner", list(RUNNERS))
def test_quicklook_png(runner, tile_2024_31n, tmp_path):
    spec, tile = tile_2024_31n
    png = tmp_path / "quicklook.png"
    output = tmp_path / "embeddings.tif"
    results = RUNNERS[runner]({"PRODUCT": "aef", "SOURCE": str(tile), "OUTPUT": str(output), "QUICKLOOK": str(png)})
    assert results["QUICKLOOK"] == str(png)
    assert output.is_file()
    assert png.is_file() and png.stat().st_size > 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["embeddings.tif", "quicklook.png"]  # no partial files left
    image = QImage(str(png))
    assert not image.isNull()
    assert image.hasAlphaChannel()
    assert min(image.width(), image.height()) >= 200
    # aspect ratio of the tile (320 x 256 pixels)
    assert image.width() / image.height() == pytest.approx(spec.width / spec.height, rel=0.02)

    north = spec.south + 10 * spec.height
    row0, row1, col0, col1 = spec.nodata_boxes[0]
    inside_box = [
        (spec.west + 10 * (col0 + (col1 - col0) * fx), north - 10 * (row0 + (row1 - row0) * fy))
        for fx in (0.2, 0.5, 0.8)
        for fy in (0.2, 0.5, 0.8)
    ]
    for x, y in inside_box:
        assert image_pixel(image, spec, x, y).alpha() == 0, f"nodata at {x},{y} is not transparent"

    def in_box(x, y):
        col, row = (x - spec.west) / 10, (north - y) / 10
        return col0 - 3 <= col <= col1 + 3 and row0 - 3 <= row <= row1 + 3

    outside = [
        (spec.west + 10 * spec.width * fx, spec.south + 10 * spec.height * fy)
        for fx in [i / 20 for i in range(1, 20)]
        for fy in [j / 16 for j in range(1, 16)]
    ]
    colours = [image_pixel(image, spec, x, y) for x, y in outside if not in_box(x, y)]
    assert len(colours) > 200
    assert all(c.alpha() == 255 for c in colours), "valid pixels must be opaque"
    saturated = [c for c in colours if max(c.red(), c.green(), c.blue()) - min(c.red(), c.green(), c.blue()) > 40]
    assert len(saturated) > 0.5 * len(colours), "the quicklook should be colourful, not grey"
    assert len({c.rgb() for c in colours}) > 50, "the PCA colours should vary across the tile"
