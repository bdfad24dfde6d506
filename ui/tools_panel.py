"""Sample & resample tab: embeddings at the points of a layer, and the embedding layer on another grid."""

from qgis.gui import QgsMapLayerComboBox
from qgis.PyQt.QtWidgets import QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox, QPushButton, QVBoxLayout, QWidget

from ..qgis_compat import LAYER_FILTER_POINT
from .runner import load_into_project

MODES = ("auto", "nearest", "aggregate")


class ToolsPanel(QWidget):
    def __init__(self, dock):
        super().__init__()
        self.dock = dock
        sample_box = QGroupBox(self.tr("Sample embeddings at points"))
        sample_form = QFormLayout(sample_box)
        self.points = QgsMapLayerComboBox()
        self.points.setFilters(LAYER_FILTER_POINT)
        sample_form.addRow(self.tr("Points"), self.points)
        self.sample_button = QPushButton(self.tr("Sample"))
        self.sample_button.clicked.connect(self.sample)
        sample_form.addRow(self.sample_button)
        resample_box = QGroupBox(self.tr("Resample the embedding layer"))
        resample_form = QFormLayout(resample_box)
        self.mode = QComboBox()
        self.mode.addItem(self.tr("auto: aggregate when coarser, nearest when finer"), "auto")
        self.mode.addItem(self.tr("nearest: copy the nearest vector"), "nearest")
        self.mode.addItem(self.tr("aggregate: sum the vectors and re-normalise"), "aggregate")
        resample_form.addRow(self.tr("Mode"), self.mode)
        self.resolution = QDoubleSpinBox()
        self.resolution.setDecimals(6)
        self.resolution.setRange(0.000001, 1e7)
        self.resolution.setValue(100.0)
        self.resolution.setToolTip(self.tr("Pixel size in the layer's CRS units"))
        resample_form.addRow(self.tr("Resolution"), self.resolution)
        self.resample_button = QPushButton(self.tr("Resample"))
        self.resample_button.clicked.connect(self.resample)
        resample_form.addRow(self.resample_button)
        layout = QVBoxLayout(self)
        layout.addWidget(sample_box)
        layout.addWidget(resample_box)
        layout.addStretch(1)

    def _input(self):
        layer = self.dock.embedding_layer()
        if layer is None:
            self.dock.tell(self.tr("Choose an embedding layer at the top of the GeoEmbed panel first."))
        return layer

    def sample(self):
        layer, points = self._input(), self.points.currentLayer()
        if layer is None:
            return None
        if points is None:
            self.dock.tell(self.tr("Choose a point layer to sample."))
            return None
        output = self.dock.output_path(f"{points.name()}_embeddings", "gpkg")
        parameters = {"INPUT": layer.source(), "POINTS": points, "OUTPUT": load_into_project(output)}
        return self.dock.run("geoembed:sample", parameters)

    def resample(self):
        layer = self._input()
        if layer is None:
            return None
        output = self.dock.output_path(f"{layer.name()}_{self.mode.currentData()}", "tif")
        parameters = {
            "INPUT": layer.source(),
            "MODE": self.mode.currentData(),
            "RESOLUTION": self.resolution.value(),
            "OUTPUT": load_into_project(output),
        }
        return self.dock.run("geoembed:resample", parameters)
