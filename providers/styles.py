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


class LayerStyler(QgsProcessingLayerPostProcessorInterface):
    """Base of the post-processors that style an output when Processing adds it to the project: make them with
    create(...), which keeps the Python object alive (Processing keeps only a raw pointer)."""

    _instances = []

    @classmethod
    def create(cls, *args):
        styler = cls(*args)
        LayerStyler._instances.append(styler)
        return styler


class EmbeddingStyler(LayerStyler):
    """Shows three embedding bands as RGB with a fixed stretch, so colours mean the same across layers."""

    def __init__(self, product):
        super().__init__()
        self.product = product

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


class RampStyler(LayerStyler):
    """A continuous output (distance, prediction) drawn with the colour ramp over low..high."""

    def __init__(self, low, high):
        super().__init__()
        self.low, self.high = low, high

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802 - QGIS API
        if isinstance(layer, QgsRasterLayer):
            apply_ramp(layer, self.low, self.high)


class HeatmapStyler(RampStyler):
    """Similarity in [-1, 1] drawn with a colour ramp (low: dark blue, high: yellow)."""

    def __init__(self):
        super().__init__(-1.0, 1.0)


def blue_magenta_yellow_ramp():
    """The colour ramp of GeoEmbed's continuous outputs (and of the break years, the objects' scores): low values
    dark blue, high ones yellow."""
    ramp = QgsGradientColorRamp(QColor(13, 8, 135), QColor(240, 249, 33))
    ramp.setStops([QgsGradientStop(0.5, QColor(204, 71, 120))])
    return ramp


def apply_ramp(layer, low, high, clip=False):
    """Pseudo-colour ramp over low..high; clip=True leaves values outside the range undrawn (a live threshold)."""
    shader_function = QgsColorRampShader(low, high, blue_magenta_yellow_ramp())
    shader_function.classifyColorRamp(9)
    shader_function.setClip(clip)
    shader = QgsRasterShader()
    shader.setRasterShaderFunction(shader_function)
    renderer = QgsSingleBandPseudoColorRenderer(layer.dataProvider(), 1, shader)
    renderer.setClassificationMin(low)
    renderer.setClassificationMax(high)
    layer.setRenderer(renderer)
    layer.triggerRepaint()


# --- paletted maps: a value, its name and its colour per entry (classes, transitions, the change mask) ----------


def write_palette(path, entries, layer_name):
    """Category names (and, in a Byte map, a colour table: value 0 transparent unless an entry gives it) in the
    GeoTIFF, for any software, and a default QGIS style beside it listing just the [(value, name, (r, g, b))]
    entries."""
    dataset = gdal.Open(path, gdal.GA_Update)
    band = dataset.GetRasterBand(1)
    if band.DataType == gdal.GDT_Byte:
        table = gdal.ColorTable()
        table.SetColorEntry(0, (0, 0, 0, 0))
        for value, _, colour in entries:
            table.SetColorEntry(value, (*colour, 255))
        band.SetRasterColorTable(table)
    names = ["nodata"] + [""] * max((value for value, _, _ in entries), default=0)
    for value, name, _ in entries:
        names[value] = name
    band.SetRasterCategoryNames(names)
    dataset = None
    layer = QgsRasterLayer(path, layer_name, "gdal")
    apply_palette(layer, entries)
    save_default_style(layer)


def apply_palette(layer, entries):
    """A paletted renderer listing just the entries (from a colour table QGIS would list all 256 entries);
    a colour is (r, g, b) or a QColor."""
    classes = [
        QgsPalettedRasterRenderer.Class(value, colour if isinstance(colour, QColor) else QColor(*colour), name)
        for value, name, colour in entries
    ]
    layer.setRenderer(QgsPalettedRasterRenderer(layer.dataProvider(), 1, classes))
    layer.triggerRepaint()


class PaletteStyler(LayerStyler):
    """Applies apply_palette() when Processing adds a paletted map (its loader ignores the default style)."""

    def __init__(self, entries):
        super().__init__()
        self.entries = list(entries)

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802 - QGIS API
        if isinstance(layer, QgsRasterLayer):
            apply_palette(layer, self.entries)


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


def class_entries(names):
    """[(value, name, (r, g, b))] of classes 1..n."""
    return [(value, name, class_colour(value)) for value, name in enumerate(names, start=1)]


def write_class_palette(path, names):
    """Colour table and category names in the GeoTIFF (for any software), and a default QGIS style beside it with
    just the n classes (value 0 is nodata)."""
    write_palette(path, class_entries(names), "classes")


class ClassStyler(PaletteStyler):
    """The classes' palette, applied when Processing adds a class map (its loader ignores the default style)."""

    def __init__(self, names):
        super().__init__(class_entries(names))
