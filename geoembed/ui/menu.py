"""GeoEmbed menu and toolbar entries; each opens the matching Processing algorithm dialog."""

from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAction

from .. import __about__

MENU = "&GeoEmbed"
ICON = str(__about__.PLUGIN_DIR / "resources" / "icons" / "geoembed.svg")
ENTRIES = (
    ("geoembed:load", "Load embeddings…", "Load an Earth embedding product as a north-up raster layer"),
    ("geoembed:catalog", "Product catalog and costs…", "Compare the embedding products and what an area costs"),
    ("geoembed:sample", "Sample at points…", "Embedding values at the points of a layer"),
    ("geoembed:similarity", "Similarity heatmap…", "Where the embeddings look like your examples"),
    ("geoembed:train", "Train a classifier…", "Classify embeddings from labelled points or polygons"),
    ("geoembed:resample", "Resample embeddings…", "Nearest or aggregate resampling onto another grid"),
)


class GeoEmbedMenu:
    def __init__(self, iface):
        self.iface = iface
        self.toolbar = None
        self.actions = []

    def setup(self):
        self.toolbar = self.iface.addToolBar("GeoEmbed")
        self.toolbar.setObjectName("GeoEmbedToolbar")
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
        if self.toolbar is not None:
            self.toolbar.deleteLater()
            self.toolbar = None

    @staticmethod
    def open_dialog(algorithm_id):
        import processing

        processing.execAlgorithmDialog(algorithm_id, {})
