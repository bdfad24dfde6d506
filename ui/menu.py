"""GeoEmbed menu and toolbar entries: the dock panel, and one entry per Processing algorithm dialog."""

from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAction

from .. import __about__

MENU = "&GeoEmbed"
ICON = str(__about__.PLUGIN_DIR / "resources" / "icons" / "geoembed.svg")
ENTRIES = (
    ("geoembed:load", "Load embeddings…", "Load an Earth embedding product as a north-up raster layer"),
    ("geoembed:catalog", "Product catalog and costs…", "Compare the embedding products and what an area costs"),
    ("geoembed:sample", "Sample at points…", "Embedding values at the points of a layer"),
    ("geoembed:zonal", "Embeddings per polygon…", "The mean embedding of each polygon: your fields, parcels or buildings"),
    ("geoembed:similarity", "Similarity heatmap…", "Where the embeddings look like your examples"),
    (
        "geoembed:detect",
        "Objects from a heatmap or class map…",
        "Polygons of connected pixels above a threshold or of chosen classes",
    ),
    ("geoembed:train", "Train a classifier…", "Classify embeddings from labelled points or polygons"),
    ("geoembed:regress", "Regression to a raster…", "Predict a numeric field (yield, height, cover) from the embeddings"),
    ("geoembed:transitions", "Class transitions…", "From-to map and transition matrix (hectares) between two class maps"),
    ("geoembed:resample", "Resample embeddings…", "Nearest or aggregate resampling onto another grid"),
    ("geoembed:pca", "PCA false colour…", "Three principal components as RGB, with colours reusable across tiles and years"),
    ("geoembed:cluster", "Cluster (k-means)…", "Group pixels with similar embeddings into classes"),
    ("geoembed:change", "Change between years…", "Cosine distance between two embedding rasters, and a change mask"),
    ("geoembed:trajectory", "Change trajectory over years…", "Year-to-year change, the year of the largest change and anomalies"),
    ("geoembed:compare", "Compare two products…", "Which product separates your classes better here"),
    ("geoembed:intrinsicdim", "Intrinsic dimension…", "How many dimensions the embeddings really use"),
)


PANEL_ACTION = "GeoEmbed_panel"


class GeoEmbedMenu:
    def __init__(self, iface):
        self.iface = iface
        self.toolbar = None
        self.actions = []
        self.panel_action = None

    def setup(self, toggle_panel):
        """Menu and toolbar entries; toggle_panel(visible) shows or hides the dock panel."""
        self.toolbar = self.iface.addToolBar("GeoEmbed")
        self.toolbar.setObjectName("GeoEmbedToolbar")
        self.panel_action = QAction(QIcon(ICON), "GeoEmbed panel", self.iface.mainWindow())
        self.panel_action.setObjectName(PANEL_ACTION)
        self.panel_action.setToolTip("Load, click for similarity, label and classify without leaving the map")
        self.panel_action.setCheckable(True)
        self.panel_action.toggled.connect(toggle_panel)
        self.iface.addPluginToRasterMenu(MENU, self.panel_action)
        self.toolbar.addAction(self.panel_action)
        self.actions.append(self.panel_action)
        for algorithm_id, text, tip in ENTRIES:
            action = QAction(QIcon(ICON), text, self.iface.mainWindow())
            action.setObjectName(f"GeoEmbed_{algorithm_id.split(':')[1]}")
            action.setToolTip(tip)
            action.triggered.connect(lambda _checked=False, alg=algorithm_id: self.open_dialog(alg))
            self.iface.addPluginToRasterMenu(MENU, action)
            self.toolbar.addAction(action)
            self.actions.append(action)

    def teardown(self):
        for action in self.actions:
            self.iface.removePluginRasterMenu(MENU, action)
            action.deleteLater()
        self.actions = []
        self.panel_action = None
        if self.toolbar is not None:
            self.toolbar.deleteLater()
            self.toolbar = None

    @staticmethod
    def open_dialog(algorithm_id):
        import processing

        processing.execAlgorithmDialog(algorithm_id, {})
