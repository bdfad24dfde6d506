"""Styles applied to GeoEmbed outputs when Processing adds them to the project."""

from qgis.core import (
    QgsColorRampShader,
    QgsContrastEnhancement,
    QgsGradientColorRamp,
    QgsGradientStop,
    QgsMultiBandColorRenderer,
    QgsProcessingLayerPostProcessorInterface,
    QgsRasterLayer,
    QgsRasterShader,
    QgsSingleBandPseudoColorRenderer,
)
from qgis.PyQt.QtGui import QColor

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
        enhancement.setContrastEnhancementAlgorithm(QgsContrastEnhancement.StretchToMinimumMaximum)
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
