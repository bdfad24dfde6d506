"""Settings tab: where caches and outputs go, the AlphaEarth mirror (and whether its index may point outside it), and
the output CRS policy (kept in QgsSettings)."""

from qgis.gui import QgsFileWidget
from qgis.PyQt.QtWidgets import QCheckBox, QComboBox, QFormLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget

from ..providers import settings


class SettingsPanel(QWidget):
    def __init__(self, dock):
        super().__init__()
        self.dock = dock
        form = QFormLayout()
        self.cache_dir = QgsFileWidget()
        self.cache_dir.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        form.addRow(self.tr("Cache folder"), self.cache_dir)
        self.output_dir = QgsFileWidget()
        self.output_dir.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        self.output_dir.lineEdit().setPlaceholderText(self.tr("empty: temporary files, deleted when QGIS quits"))
        form.addRow(self.tr("Output folder"), self.output_dir)
        self.mirror = QLineEdit()
        self.mirror.setPlaceholderText(self.tr("empty: the public copy on Source Cooperative"))
        form.addRow(self.tr("AlphaEarth mirror"), self.mirror)
        self.allow_outside = QCheckBox(self.tr("Let mirror indexes point outside the mirror"))
        self.allow_outside.setToolTip(
            self.tr(
                "Off (safer): tiles listed in a mirror's aef_index.parquet are read only from the mirror's own folder "
                "or host. On: an index may send GeoEmbed to any host or local file; only for indexes you trust."
            )
        )
        form.addRow("", self.allow_outside)
        self.crs_policy = QComboBox()
        for policy, text in settings.CRS_POLICIES.items():
            self.crs_policy.addItem(text, policy)
        form.addRow(self.tr("Output CRS"), self.crs_policy)
        self.save_button = QPushButton(self.tr("Save settings"))
        self.save_button.clicked.connect(self.save)
        note = QLabel(self.tr("The Processing algorithms use the cache folder and the mirror too (toolbox and qgis_process)."))
        note.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addWidget(self.save_button)
        layout.addStretch(1)
        self.show_current()

    def show_current(self):
        self.cache_dir.setFilePath(settings.cache_dir())
        self.output_dir.setFilePath(settings.output_dir())
        self.mirror.setText(settings.aef_mirror())
        self.allow_outside.setChecked(settings.allow_paths_outside_mirror())
        self.crs_policy.setCurrentIndex(max(0, self.crs_policy.findData(settings.crs_policy())))

    def save(self):
        settings.set_cache_dir(self.cache_dir.filePath().strip())
        settings.set_output_dir(self.output_dir.filePath().strip())
        settings.set_aef_mirror(self.mirror.text())
        settings.set_allow_paths_outside_mirror(self.allow_outside.isChecked())
        settings.set_crs_policy(self.crs_policy.currentData())
        self.dock.status.setText(self.tr("Settings saved"))
