"""Load tab: a product from the catalog, a year (or several) and an extent, loaded and styled by geoembed:load."""

import os

from qgis.core import QgsCoordinateReferenceSystem
from qgis.gui import QgsExtentGroupBox, QgsFileWidget
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..loaders.errors import GeoEmbedError
from ..loaders.years import parse_years, year_path
from ..providers import settings
from ..providers.catalog import products
from .layers import layers_with_source
from .runner import load_into_project

LATEST = 2000  # the year spin box's lowest value, shown as "latest"
WGS84 = QgsCoordinateReferenceSystem("EPSG:4326")


def product_summary(product):
    """One line about a product: resolution, dims, kind and licence."""
    if product.resolution_m is None:  # the generic product: any embedding raster
        return f"{product.kind} product: any raster with one band per dimension; its resolution, dims and type are its own"
    size = f"{product.resolution_m:g} m" if product.resolution_m < 1000 else f"{product.resolution_m / 1000:g} km"
    return f"{product.kind} product, {size}, {product.dims} dimensions, {product.dtype}; licence {product.licence}"


class LoadPanel(QWidget):
    def __init__(self, dock):
        super().__init__()
        self.dock = dock
        form = QFormLayout()
        self.product = QComboBox()
        self.product.addItem(self.tr("auto (recognise from the files)"), "auto")
        self.products = {product.id: product for product in products()}
        for product in self.products.values():
            self.product.addItem(product.name, product.id)
        self.product.currentIndexChanged.connect(self._describe)
        form.addRow(self.tr("Product"), self.product)
        self.about = QLabel()
        self.about.setWordWrap(True)
        form.addRow("", self.about)
        self.source = QgsFileWidget()
        self.source.setStorageMode(QgsFileWidget.StorageMode.GetFile)
        self.source.lineEdit().setPlaceholderText(self.tr("file, folder or URL (empty: AlphaEarth mirror or public copy)"))
        form.addRow(self.tr("Source"), self.source)
        self.year = QSpinBox()
        self.year.setRange(LATEST, 2100)
        self.year.setSpecialValueText(self.tr("latest"))
        self.year.setValue(LATEST)
        self.years = QLineEdit()  # several years: one file each, on one grid (geoembed:load's YEARS)
        self.years.setPlaceholderText(self.tr("or years, e.g. 2018-2024"))
        self.years.setToolTip(self.tr("Several years, e.g. 2019,2021,2024 or 2018-2024: one layer per year, all on one grid"))
        self.years.textChanged.connect(lambda text: self.year.setEnabled(not text.strip()))
        years_row = QHBoxLayout()
        years_row.addWidget(self.year)
        years_row.addWidget(self.years, 1)
        form.addRow(self.tr("Year"), years_row)
        self.output = QgsFileWidget()
        self.output.setStorageMode(QgsFileWidget.StorageMode.SaveFile)
        self.output.setFilter("GeoTIFF (*.tif)")
        self.output.lineEdit().setPlaceholderText(self.tr("empty: a new file in the output folder"))
        form.addRow(self.tr("Output"), self.output)
        self.extent = QgsExtentGroupBox()
        self.extent.setTitle(self.tr("Limit to an extent (canvas, layer or drawn)"))
        self.extent.setCheckable(True)
        self.extent.setOutputCrs(WGS84)
        canvas = dock.canvas
        self.extent.setCurrentExtent(canvas.extent(), canvas.mapSettings().destinationCrs())
        self.extent.setOriginalExtent(canvas.extent(), canvas.mapSettings().destinationCrs())
        self.extent.setOutputExtentFromCurrent()
        self.extent.setMapCanvas(canvas)
        self.extent.setChecked(False)  # after the setters above, which tick the box: a single tile needs no extent
        self.load_button = QPushButton(self.tr("Load"))
        self.load_button.clicked.connect(self.load)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.extent)
        layout.addWidget(self.load_button)
        layout.addStretch(1)
        self._describe()

    def _describe(self):
        product_id = self.product.currentData()
        self.about.setText(
            self.tr("GeoEmbed recognises the product from its files and says which it chose.")
            if product_id == "auto"
            else product_summary(self.products[product_id])
        )

    def parameters(self):
        """geoembed:load parameters from the widgets (OUTPUT is a plain path here)."""
        parameters = {
            "PRODUCT": self.product.currentData(),
            "SOURCE": self.source.filePath().strip(),
            "OUTPUT": self.output.filePath().strip() or self.dock.output_path(self._stem(), "tif"),
        }
        if self.years.text().strip():
            parameters["YEARS"] = self.years.text().strip()
            if not self.output.filePath().strip():
                parameters["OUTPUT"] = self._free_years_output(parameters["YEARS"])
        elif self.year.value() != LATEST:
            parameters["YEAR"] = self.year.value()
        if self.extent.isChecked():
            rect, crs = self.extent.outputExtent(), self.extent.outputCrs().authid()
            parameters["EXTENT"] = f"{rect.xMinimum()!r},{rect.xMaximum()!r},{rect.yMinimum()!r},{rect.yMaximum()!r} [{crs}]"
        if settings.crs_policy() == "project" and self.dock.project_crs().isValid():
            parameters["CRS"] = self.dock.project_crs().authid() or self.dock.project_crs().toWkt()
        return parameters

    def _stem(self):
        product_id = self.product.currentData()
        year = self.year.value() if self.year.value() != LATEST else "latest"
        return f"{product_id if product_id != 'auto' else 'embeddings'}_{year}"

    def _free_years_output(self, years):
        """An OUTPUT whose per-year files (<stem>_<year>.tif) are all new: the years' files never overwrite others."""
        product_id = self.product.currentData()
        stem = product_id if product_id != "auto" else "embeddings"  # aef -> aef_2019.tif, aef_2024.tif
        candidates = [stem] + [f"{stem}_{number}" for number in range(2, 1000)]
        for candidate in candidates:
            path = self.dock.output_path(candidate, "tif")
            if not any(os.path.exists(year_path(path, year)) for year in self._listed_years(years)):
                return path
        return path

    @staticmethod
    def _listed_years(text):
        """The years of a YEARS text, or none when it is not valid (the algorithm then refuses it in one line)."""
        try:
            return parse_years(text)
        except GeoEmbedError:
            return []

    def load(self):
        parameters = self.parameters()
        path = parameters["OUTPUT"]
        parameters["OUTPUT"] = load_into_project(path)
        several = "YEARS" in parameters  # the latest year's file is the one to show, not OUTPUT's own path
        self.dock.run("geoembed:load", parameters, lambda results: self._loaded(results.get("OUTPUT", path) if several else path))

    def _loaded(self, path):
        layers = layers_with_source(path)
        if layers:
            self.dock.set_embedding_layer(layers[-1])

    def unload(self):
        pass
