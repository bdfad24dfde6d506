"""Processing provider 'geoembed'."""

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .. import __about__
from .catalog import CatalogAlgorithm
from .change import ChangeAlgorithm
from .cluster import ClusterAlgorithm
from .compare import CompareAlgorithm
from .detect import DetectAlgorithm
from .intrinsicdim import IntrinsicDimAlgorithm
from .load import LoadAlgorithm
from .pca import PcaAlgorithm
from .regress import RegressAlgorithm
from .resample import ResampleAlgorithm
from .sample import SampleAlgorithm
from .similarity import SimilarityAlgorithm
from .train import ClassifyAlgorithm, TrainAlgorithm
from .trajectory import TrajectoryAlgorithm
from .transitions import TransitionsAlgorithm
from .zonal import ZonalAlgorithm

ALGORITHMS = (  # in the order of a user's work: load, sample, search, classify, compare years, explore
    LoadAlgorithm,
    CatalogAlgorithm,
    SampleAlgorithm,
    ZonalAlgorithm,
    SimilarityAlgorithm,
    DetectAlgorithm,
    TrainAlgorithm,
    ClassifyAlgorithm,
    RegressAlgorithm,
    TransitionsAlgorithm,
    ResampleAlgorithm,
    ChangeAlgorithm,
    TrajectoryAlgorithm,
    CompareAlgorithm,
    IntrinsicDimAlgorithm,
    PcaAlgorithm,
    ClusterAlgorithm,
)
ICON = str(__about__.PLUGIN_DIR / "resources" / "icons" / "geoembed.svg")


class GeoEmbedProvider(QgsProcessingProvider):
    def id(self):
        return "geoembed"

    def name(self):
        return "GeoEmbed"

    def longName(self):  # noqa: N802 - QGIS API
        return f"GeoEmbed {__about__.__version__}"

    def versionInfo(self):  # noqa: N802
        return __about__.__version__

    def icon(self):
        return QIcon(ICON)

    def loadAlgorithms(self):  # noqa: N802
        for algorithm in ALGORITHMS:
            self.addAlgorithm(algorithm())

    def supportedOutputRasterLayerExtensions(self):  # noqa: N802
        return ["tif"]

    def defaultRasterFileExtension(self):  # noqa: N802
        return "tif"
