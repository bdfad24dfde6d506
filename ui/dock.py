"""The GeoEmbed dock: one embedding layer shared by every tab, the tabs, and the progress of the current run."""

from qgis.core import QgsProcessingUtils, QgsProject
from qgis.gui import QgsDockWidget, QgsMapLayerComboBox
from qgis.PyQt.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QTabWidget, QVBoxLayout, QWidget

from ..providers import settings
from ..qgis_compat import LAYER_FILTER_RASTER
from .label_panel import LabelPanel
from .load_panel import LoadPanel
from .runner import LOG_TAG, AlgorithmRun
from .settings_panel import SettingsPanel
from .similarity_panel import SimilarityPanel
from .tools_panel import ToolsPanel


class GeoEmbedDock(QgsDockWidget):
    """Panels call run() to start an algorithm; only one runs at a time (a new similarity click replaces the last)."""

    def __init__(self, iface, parent=None):
        super().__init__("GeoEmbed", parent)
        self.setObjectName("GeoEmbedDock")
        self.iface = iface
        self.canvas = iface.mapCanvas()
        self.current = None
        body = QWidget()
        layout = QVBoxLayout(body)
        row = QHBoxLayout()
        row.addWidget(QLabel(self.tr("Embedding layer")))
        self.layer_combo = QgsMapLayerComboBox()
        self.layer_combo.setFilters(LAYER_FILTER_RASTER)
        self.layer_combo.setAllowEmptyLayer(True)
        self.layer_combo.setToolTip(self.tr("The embeddings that similarity, labelling, sampling and resampling work on"))
        row.addWidget(self.layer_combo, 1)
        layout.addLayout(row)
        self.tabs = QTabWidget()
        self.load_panel = LoadPanel(self)
        self.similarity_panel = SimilarityPanel(self)
        self.label_panel = LabelPanel(self)
        self.tools_panel = ToolsPanel(self)
        self.settings_panel = SettingsPanel(self)
        for panel, title in (
            (self.load_panel, self.tr("Load")),
            (self.similarity_panel, self.tr("Similarity")),
            (self.label_panel, self.tr("Label && classify")),
            (self.tools_panel, self.tr("Sample && resample")),
            (self.settings_panel, self.tr("Settings")),
        ):
            self.tabs.addTab(panel, title)
        layout.addWidget(self.tabs, 1)
        status = QHBoxLayout()
        self.status = QLabel(self.tr("Ready"))
        self.status.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        self.cancel_button = QPushButton(self.tr("Cancel"))
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        status.addWidget(self.progress, 1)
        status.addWidget(self.cancel_button)
        layout.addWidget(self.status)
        layout.addLayout(status)
        self.setWidget(body)

    # --- what the panels share ---------------------------------------------------------------

    def embedding_layer(self):
        return self.layer_combo.currentLayer()

    def set_embedding_layer(self, layer):
        self.layer_combo.setLayer(layer)

    def message_bar(self):
        return self.iface.messageBar()

    def tell(self, text, level=None):
        """One line in the message bar (a warning unless a level is given)."""
        from qgis.core import Qgis

        self.message_bar().pushMessage(LOG_TAG, text, Qgis.MessageLevel.Warning if level is None else level, 6)

    def output_path(self, stem, extension):
        """Where a panel writes an output: the output folder of the settings, else Processing's temporary folder."""
        folder = settings.output_dir()
        if not folder:
            return QgsProcessingUtils.generateTempFilename(f"{stem}.{extension}")
        return settings.unique_path(folder, stem, extension)

    def project_crs(self):
        return QgsProject.instance().crs()

    # --- running algorithms ------------------------------------------------------------------

    def busy(self):
        return self.current is not None and not self.current.done

    def run(self, algorithm_id, parameters, on_done=None, replace=False):
        """Start an algorithm in a background task; on_done(results) runs when it succeeds. Returns the run or None."""
        if self.busy():
            if not replace:
                running = self.current.algorithm.displayName()
                self.tell(self.tr("GeoEmbed is still running {}; wait or cancel it.").format(running))
                return None
            self.current.cancel()
        if self.current is not None and self.current.done:
            self.current.deleteLater()  # finished runs are not kept
        run = AlgorithmRun(algorithm_id, parameters, self.message_bar(), self)
        run.progress.connect(lambda percent, run=run: self._progress(run, percent))
        run.finished.connect(lambda ok, results, message, run=run: self._finished(run, ok, results, message, on_done))
        self.current = run
        self.progress.setValue(0)
        self.cancel_button.setEnabled(True)
        self.status.setText(self.tr("Running {}…").format(run.algorithm.displayName()))
        return run.start()

    def cancel(self):
        if self.busy():
            self.current.cancel()

    def _progress(self, run, percent):
        if run is self.current:
            self.progress.setValue(int(percent))

    def _finished(self, run, ok, results, message, on_done):
        if run is not self.current:  # a replaced run ending late: nothing to show
            run.deleteLater()
            return
        self.cancel_button.setEnabled(False)
        self.progress.setValue(100 if ok else 0)
        first_line = message.strip().splitlines()[0] if message.strip() else ""
        self.status.setText(self.tr("Done: {}").format(run.algorithm.displayName()) if ok else first_line)
        if ok and on_done is not None:
            on_done(results)

    def unload(self):
        """Stop the current run and take the map tools and rubber bands off the canvas."""
        self.cancel()
        for panel in (self.similarity_panel, self.label_panel, self.load_panel):
            panel.unload()
