"""What every GeoEmbed algorithm shares: naming, help, and turning failures into one-line errors."""

import os
import traceback

from qgis.core import QgsProcessingAlgorithm, QgsProcessingException
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtGui import QIcon

from .. import __about__
from ..loaders.errors import GeoEmbedError
from ..loaders.remote.locations import is_url
from ..qgis_compat import CRS_WKT_PREFERRED

HELP_DIR = __about__.PLUGIN_DIR / "resources" / "help"
ICON = str(__about__.PLUGIN_DIR / "resources" / "icons" / "geoembed.svg")


class FeedbackLog:
    """The loaders' log interface on top of a QgsProcessingFeedback."""

    def __init__(self, feedback):
        self.feedback = feedback

    def info(self, message):
        self.feedback.pushInfo(message)

    def warning(self, message):
        if hasattr(self.feedback, "pushWarning"):
            self.feedback.pushWarning(message)
        else:  # pragma: no cover - QGIS < 3.16
            self.feedback.reportError(message, False)

    def debug(self, message):
        """Details for a bug report (a traceback): shown in the log, not as a warning."""
        self.feedback.pushDebugInfo(message)

    def progress(self, fraction):
        self.feedback.setProgress(100.0 * fraction)

    def is_cancelled(self):
        return self.feedback.isCanceled()


class GeoEmbedAlgorithm(QgsProcessingAlgorithm):
    """Subclasses set NAME, DISPLAY_NAME, GROUP, GROUP_ID and implement execute().

    (Not run(): that name belongs to QgsProcessingAlgorithm, and processing.run() calls it.)
    """

    NAME = ""
    DISPLAY_NAME = ""
    GROUP = ""
    GROUP_ID = ""

    def name(self):
        return self.NAME

    def displayName(self):  # noqa: N802 - QGIS API
        return self.tr(self.DISPLAY_NAME)

    def group(self):
        return self.tr(self.GROUP)

    def groupId(self):  # noqa: N802
        return self.GROUP_ID

    def icon(self):
        return QIcon(ICON)

    def createInstance(self):  # noqa: N802
        return type(self)()

    def tr(self, text):
        return QCoreApplication.translate("GeoEmbed", text)

    HELP_PARTS = ()  # help paragraphs shared by several algorithms (resources/help/parts/NAME.html), appended

    def shortHelpString(self):  # noqa: N802
        paths = [HELP_DIR / f"{self.NAME}.html", *(HELP_DIR / "parts" / f"{part}.html" for part in self.HELP_PARTS)]
        return "".join(path.read_text(encoding="utf-8") for path in paths if path.exists())

    def helpUrl(self):  # noqa: N802
        return f"{__about__.__uri_repository__}#geoembed{self.NAME}"

    PATH_INPUTS = ()  # raster inputs that may also be a product folder or URL (QGIS would refuse those)

    def checkParameterValues(self, parameters, context):  # noqa: N802
        for definition in self.parameterDefinitions():
            name = definition.name()
            value = parameters.get(name)
            if name in self.PATH_INPUTS and isinstance(value, str) and value:
                if os.path.isdir(value) or is_url(value) or os.path.exists(value):
                    continue
                if context.project() is None or context.project().mapLayer(value) is None:
                    return False, f"{name} {value} does not exist; give an embedding layer, a product file or a folder."
            if name in self.PATH_INPUTS and isinstance(value, (list, tuple)):
                # A multiple-layers input (qgis_process: INPUT given several times): QGIS would load every path as a
                # layer to check it, and refuse folders; layers, layer ids or names and existing paths are taken here.
                missing = [item for item in value if isinstance(item, str) and not _findable(item, context)]
                if missing:
                    return False, f"{name} {missing[0]} does not exist; give embedding layers, product files or folders."
                continue
            if definition.type() in ("file", "raster") and isinstance(value, str) and value and not _findable(value, context):
                return False, f"{name} {value} does not exist; check the path."
            if not definition.checkValueIsAcceptable(value, context):
                return False, f"Incorrect parameter value for {name}"
        return True, ""

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        try:
            return self.execute(parameters, context, feedback)
        except QgsProcessingException:
            raise
        except GeoEmbedError as exc:
            raise QgsProcessingException(one_line(exc)) from None
        except MemoryError:
            raise QgsProcessingException("Out of memory; use a smaller EXTENT or a coarser RESOLUTION.") from None
        except OSError as exc:
            where = f" ({exc.filename})" if exc.filename else ""
            raise QgsProcessingException(one_line(f"{exc.strerror or exc}{where}; check the path and free disk space.")) from None
        except Exception as exc:  # a bug: keep the details in the log, give the user one line
            feedback.pushDebugInfo(traceback.format_exc())
            raise QgsProcessingException(
                one_line(f"Unexpected error ({type(exc).__name__}: {exc}); please report it at {__about__.__uri_tracker__}.")
            ) from None

    def execute(self, parameters, context, feedback):
        raise NotImplementedError


def one_line(message):
    """What the user is told fits one line: GDAL 3.7+ and other libraries put several lines in their errors."""
    return " ".join(str(message).split())


def _findable(value, context):
    """A path, URL or project layer id/name that exists (QGIS says only 'Incorrect parameter value' otherwise)."""
    source = value.split("|")[0]
    if os.path.exists(source) or is_url(source) or source.upper().startswith(("/VSI", "GPKG:", "NETCDF:")):
        return True
    project = context.project()
    return project is not None and (project.mapLayer(value) is not None or bool(project.mapLayersByName(value)))


def crs_to_string(crs):
    """'EPSG:n' when QGIS knows an EPSG id, else WKT (both understood by pyproj and GDAL)."""
    if crs.authid().upper().startswith("EPSG:"):
        return crs.authid()
    return crs.toWkt(CRS_WKT_PREFERRED)
