"""Styles applied to GeoEmbed outputs when Processing adds them to the project."""

import colorsys

from osgeo import gdal
from qgis.core import (
    QgsColorRampShader,
    QgsContrastEnhancement,
    QgsGradientColorRamp,
    QgsGradientStop,
    QgsMultiBandColorRenderer,
    QgsPalettedRasterRenderer,
    QgsProcessingLayerPostProcessorInterface,
    QgsRasterLayer,
    QgsRasterShader,
    QgsSingleBandPseudoColorRenderer,
)
from qgis.PyQt.QtGui import QColor

from ..qgis_compat import save_default_style

# Bands and range of Google's own AEF visualisation (A01, A16, A09 over -0.3..0.3).
DISPLAY_BANDS = {"aef": (("A01", "A16", "A09"), (-0.3, 0.3))}


class EmbeddingStyler(QgsProcessingLayerPostProcessorInterface):
    """Shows three embedding bands as RGB with a fixed stretch, so colours mean the same across layers."""

    _instances = []  # Processing keeps a raw pointer: keep the Python objects alive

    def __init__(self, product):
        super().__init__()
        self.product = product

    @classmethod
    def create(cls, product):
        styler = cls(product)
        cls._instances.append(styler)
        return styler

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802 - QGIS API
        if not isinstance(layer, QgsRasterLayer) or self.product not in DISPLAY_BANDS:
            return
        apply_band_style(layer, *DISPLAY_BANDS[self.product])


def apply_band_style(layer, band_names, value_range):
    provider = layer.dataProvider()
    names = [provider.generateBandName(i) for i in range(1, layer.bandCount() + 1)]
    descriptions = [layer.bandName(i) for i in range(1, layer.bandCount() + 1)]
    numbers = []
    for name in band_names:
        matches = [i + 1 for i, text in enumerate(descriptions) if text.endswith(name)]
        numbers.append(matches[0] if matches else min(len(numbers) + 1, len(names)))
    renderer = QgsMultiBandColorRenderer(provider, *numbers)
    for setter, band in zip(
        (renderer.setRedContrastEnhancement, renderer.setGreenContrastEnhancement, renderer.setBlueContrastEnhancement), numbers
    ):
        enhancement = QgsContrastEnhancement(provider.dataType(band))
        enhancement.setContrastEnhancementAlgorithm(QgsContrastEnhancement.ContrastEnhancementAlgorithm.StretchToMinimumMaximum)
        enhancement.setMinimumValue(value_range[0])
        enhancement.setMaximumValue(value_range[1])
        setter(enhancement)
    layer.setRenderer(renderer)
    layer.triggerRepaint()


class HeatmapStyler(QgsProcessingLayerPostProcessorInterface):
    """Similarity in [-1, 1] drawn with a colour ramp (low: dark blue, high: yellow)."""

    _instances = []

    @classmethod
    def create(cls):
        styler = cls()
        cls._instances.append(styler)
        return styler

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802 - QGIS API
        if isinstance(layer, QgsRasterLayer):
            apply_ramp(layer, -1.0, 1.0)


def apply_ramp(layer, low, high, clip=False):
    """Pseudo-colour ramp over low..high; clip=True leaves values outside the range undrawn (a live threshold)."""
    ramp = QgsGradientColorRamp(QColor(13, 8, 135), QColor(240, 249, 33))
    ramp.setStops([QgsGradientStop(0.5, QColor(204, 71, 120))])
    shader_function = QgsColorRampShader(low, high, ramp)
    shader_function.classifyColorRamp(9)
    shader_function.setClip(clip)
    shader = QgsRasterShader()
    shader.setRasterShaderFunction(shader_function)
    renderer = QgsSingleBandPseudoColorRenderer(layer.dataProvider(), 1, shader)
    renderer.setClassificationMin(low)
    renderer.setClassificationMax(high)
    layer.setRenderer(renderer)
    layer.triggerRepaint()


# --- class maps (train, classify, cluster) ---------------------------------------------------------

PALETTE = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
]


def class_colour(value):
    """RGB of class value 1..255: ten well-separated colours first, then golden-angle hues at alternating strengths."""
    if value <= len(PALETTE):
        return PALETTE[value - 1]
    hue = (value * 0.6180339887498949) % 1.0
    saturation, brightness = ((0.75, 0.9), (0.55, 0.7), (0.9, 0.6))[value % 3]
    return tuple(round(255 * c) for c in colorsys.hsv_to_rgb(hue, saturation, brightness))


def write_class_palette(path, names):
    """Colour table and category names in the GeoTIFF (for any software), and a default QGIS style beside it with
    just the n classes (value 0 is nodata)."""
    dataset = gdal.Open(path, gdal.GA_Update)
    band = dataset.GetRasterBand(1)
    if band.DataType == gdal.GDT_Byte:
        table = gdal.ColorTable()
        table.SetColorEntry(0, (0, 0, 0, 0))
        for value in range(1, len(names) + 1):
            table.SetColorEntry(value, (*class_colour(value), 255))
        band.SetRasterColorTable(table)
    band.SetRasterCategoryNames(["nodata", *names])
    dataset = None
    layer = QgsRasterLayer(path, "classes", "gdal")
    apply_class_palette(layer, names)
    save_default_style(layer)


def apply_class_palette(layer, names):
    """A paletted renderer listing just the classes (from the colour table QGIS would list all 256 entries)."""
    classes = [QgsPalettedRasterRenderer.Class(v, QColor(*class_colour(v)), name) for v, name in enumerate(names, start=1)]
    layer.setRenderer(QgsPalettedRasterRenderer(layer.dataProvider(), 1, classes))
    layer.triggerRepaint()


class ClassStyler(QgsProcessingLayerPostProcessorInterface):
    """Applies apply_class_palette() when Processing adds a class map (its loader ignores the default style)."""

    _instances = []  # Processing keeps a raw pointer: keep the Python objects alive

    def __init__(self, names):
        super().__init__()
        self.names = list(names)

    @classmethod
    def create(cls, names):
        styler = cls(names)
        cls._instances.append(styler)
        return styler

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802 - QGIS API
        if isinstance(layer, QgsRasterLayer):
            apply_class_palette(layer, self.names)
