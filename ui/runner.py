"""Runs GeoEmbed Processing algorithms as background tasks for the dock panel (the toolbox's code path).

Outputs marked for loading are added to the project as the Processing toolbox adds them (the user's Processing
styles and results group, then the algorithm's own styling), through public API that is the same from QGIS 3.22 to
QGIS 4; a failure becomes one line in the message bar and the details go to the log.
"""

from qgis.core import (
    Qgis,
    QgsApplication,
    QgsExpressionContext,
    QgsMessageLog,
    QgsProcessingAlgRunnerTask,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputLayerDefinition,
    QgsProcessingUtils,
    QgsProject,
    QgsRasterLayer,
    QgsVectorLayer,
)
from qgis.PyQt import sip
from qgis.PyQt.QtCore import QObject, pyqtSignal

from ..qgis_compat import GEOMETRY_POINT, GEOMETRY_POLYGON

LOG_TAG = "GeoEmbed"
CANCELLED = "Cancelled."


class CollectingFeedback(QgsProcessingFeedback):
    """Keeps the messages of a run: the last error is what the user is told, everything goes to the log."""

    def __init__(self):
        super().__init__()
        self.errors = []
        self.lines = []

    def reportError(self, error, fatalError=False):  # noqa: N802, N803 - QGIS API
        self.errors.append(error)
        self.lines.append(f"ERROR: {error}")
        super().reportError(error, fatalError)

    def pushInfo(self, info):  # noqa: N802 - QGIS API
        self.lines.append(info)
        super().pushInfo(info)

    def pushWarning(self, warning):  # noqa: N802 - QGIS API
        self.lines.append(f"WARNING: {warning}")
        super().pushWarning(warning)


def load_into_project(path):
    """A destination value that makes Processing add the output to the current project when done."""
    return QgsProcessingOutputLayerDefinition(path, QgsProject.instance())


# --- adding the outputs to the project -------------------------------------------------------------


def add_result_layers(algorithm, parameters, context, feedback):
    """Add every output the context was asked to load on completion to its project; the sources that QGIS could
    not open as layers are returned.

    Per layer, in the order of Processing's own result handling (processing/gui/Postprocessing.py): the name the
    algorithm chose, the style set in Processing's options, the results group set there, then the algorithm's
    post-processor (GeoEmbed's renderers), which runs once the layer is in the project.
    """
    not_loaded = []
    for destination, details in context.layersToLoadOnCompletion().items():
        layer = QgsProcessingUtils.mapLayerFromString(destination, context, typeHint=details.layerTypeHint)
        if layer is None:
            not_loaded.append(destination)
            continue
        details.setOutputLayerName(layer)
        style = processing_style(algorithm, _output_name(algorithm, parameters, destination, details), layer)
        if style:
            layer.loadNamedStyle(style)
        owned = context.temporaryLayerStore().takeMapLayer(layer)  # None: the project had this layer already
        if owned is not None:
            _add_to_project(details.project or context.project() or QgsProject.instance(), owned)
        if details.postProcessor() is not None:
            details.postProcessor().postProcessLayer(layer, context, feedback)
    if not_loaded:
        feedback.reportError("QGIS could not open these outputs as layers: " + ", ".join(not_loaded))
    return not_loaded


def _output_name(algorithm, parameters, destination, details):
    """The algorithm output whose parameter value is this destination (a style set in Processing is per output)."""
    expression_context = QgsExpressionContext()
    for output in algorithm.outputDefinitions():
        value = parameters.get(output.name())
        if value is None:
            continue
        if isinstance(value, QgsProcessingOutputLayerDefinition):
            value = value.sink.valueAsString(expression_context)[0]
        if str(value) == destination:
            return output.name()
    return details.outputName


def processing_style(algorithm, output_name, layer):
    """The QML file set in Processing's options for this output, or for layers of this kind; "" when none is."""
    from processing.core.ProcessingConfig import ProcessingConfig
    from processing.gui.RenderingStyles import RenderingStyles

    style = RenderingStyles.getStyle(algorithm.id(), output_name) if output_name else None
    if style is not None:
        return style
    if isinstance(layer, QgsRasterLayer):
        setting = ProcessingConfig.RASTER_STYLE
    elif isinstance(layer, QgsVectorLayer) and layer.geometryType() == GEOMETRY_POINT:
        setting = ProcessingConfig.VECTOR_POINT_STYLE
    elif isinstance(layer, QgsVectorLayer) and (layer.geometryType() == GEOMETRY_POLYGON or not layer.isSpatial()):
        setting = ProcessingConfig.VECTOR_POLYGON_STYLE  # Processing's choice for tables too
    elif isinstance(layer, QgsVectorLayer):
        setting = ProcessingConfig.VECTOR_LINE_STYLE
    else:
        return ""
    return ProcessingConfig.getSetting(setting) or ""


def _add_to_project(project, layer):
    """Where Processing puts a result: at the top of the results group set in its options, else at the layer tree's
    insertion point (QGIS keeps it above the selected layer); with its feature count shown if that option is on."""
    from processing.core.ProcessingConfig import ProcessingConfig

    group_name = ProcessingConfig.getSetting(ProcessingConfig.RESULTS_GROUP_NAME)
    if group_name:
        root = project.layerTreeRoot()
        group = root.findGroup(group_name) or root.insertGroup(0, group_name)
        project.addMapLayer(layer, False)
        node = group.insertLayer(0, layer)  # the top of the group, as Processing does in QGIS 3.44
    else:
        project.addMapLayer(layer)
        node = project.layerTreeRoot().findLayer(layer.id())
    count_option = getattr(ProcessingConfig, "VECTOR_FEATURE_COUNT", None)  # an option since QGIS 3.44
    if node is not None and isinstance(layer, QgsVectorLayer) and count_option and ProcessingConfig.getSetting(count_option):
        node.setCustomProperty("showFeatureCount", True)


# --- what a task refers to ---------------------------------------------------------------------------

# QgsProcessingAlgRunnerTask keeps C++ references to the context and the feedback it was given (the context "must
# exist for the lifetime of the task") while the task manager owns the task and deletes it some time after it ended.
# The Python objects that own them are kept here until the task is deleted, and let go of then: in the main thread,
# where Qt deletes tasks, and not in whichever thread Python's garbage collector happens to run when the run object
# is collected (a context deletes the layers it still holds).
_TASK_REFERENCES = {}


def keep_until_task_deleted(task, *objects):
    key = id(task)
    _TASK_REFERENCES[key] = objects
    task.destroyed.connect(lambda *_, key=key: _TASK_REFERENCES.pop(key, None))


def objects_kept_for_tasks():
    """How many tasks still hold objects here (for tests)."""
    return len(_TASK_REFERENCES)


# --- a run -----------------------------------------------------------------------------------------


class AlgorithmRun(QObject):
    """One algorithm running in a QgsTask. Emits progress(percent) and finished(ok, results, message).

    After the run has finished it no longer holds the processing context (the task lets it go once deleted);
    the feedback stays, with the run's messages.
    """

    progress = pyqtSignal(float)
    finished = pyqtSignal(bool, dict, str)

    def __init__(self, algorithm_id, parameters, message_bar=None, parent=None):
        super().__init__(parent)
        registry = QgsApplication.processingRegistry()
        self.algorithm = registry.createAlgorithmById(algorithm_id)
        if self.algorithm is None:
            raise RuntimeError(f"{algorithm_id} is not registered; is the GeoEmbed plugin enabled?")
        self.parameters = parameters
        self.message_bar = message_bar
        self.context = QgsProcessingContext()
        self.context.setProject(QgsProject.instance())
        self.feedback = CollectingFeedback()
        self.feedback.progressChanged.connect(self.progress.emit)
        self.task = None
        self.done = False
        self.ok = False
        self.results = {}
        self.message = ""

    def start(self):
        ok, problem = self.algorithm.checkParameterValues(self.parameters, self.context)
        if not ok:
            self._finish(False, {}, problem)
            return self
        self.task = QgsProcessingAlgRunnerTask(self.algorithm, self.parameters, self.context, self.feedback)
        keep_until_task_deleted(self.task, self.context, self.feedback)
        self.task.executed.connect(self._executed)
        QgsApplication.taskManager().addTask(self.task)
        return self

    def cancel(self):
        self.feedback.cancel()
        if self.task is not None and not sip.isdeleted(self.task):
            self.task.cancel()

    def _executed(self, ok, results):
        """The task's end, in the main thread (the task still exists: the task manager deletes it afterwards)."""
        if sip.isdeleted(self):  # the panel was closed while the task wound down
            return
        self.task = None  # owned by the task manager, which deletes it soon
        if ok and not self.feedback.isCanceled():  # a run cancelled too late to stop still adds nothing
            not_loaded = add_result_layers(self.algorithm, self.parameters, self.context, self.feedback)
            if not_loaded and self.message_bar is not None:
                text = f"{self.algorithm.displayName()}: QGIS could not open {', '.join(not_loaded)} as a layer; see the log."
                self.message_bar.pushMessage(LOG_TAG, text, Qgis.MessageLevel.Warning, 8)
            self._finish(True, dict(results), "")
        elif self.feedback.isCanceled():
            self._finish(False, {}, CANCELLED)
        else:
            self._finish(False, {}, self.feedback.errors[-1] if self.feedback.errors else "The algorithm failed; see the log.")

    def _finish(self, ok, results, message):
        self.context = None  # kept for the task until it is deleted (keep_until_task_deleted)
        self.done, self.ok, self.results, self.message = True, ok, results, message
        name = self.algorithm.displayName()
        if self.feedback.lines:
            QgsMessageLog.logMessage(f"{name}:\n" + "\n".join(self.feedback.lines), LOG_TAG, Qgis.MessageLevel.Info)
        if not ok:
            first_line = message.strip().splitlines()[0] if message.strip() else "failed"
            level = Qgis.MessageLevel.Warning if message == CANCELLED else Qgis.MessageLevel.Critical
            QgsMessageLog.logMessage(f"{name} failed: {message}", LOG_TAG, level)
            if self.message_bar is not None and message != CANCELLED:
                self.message_bar.pushMessage(LOG_TAG, f"{name}: {first_line}", Qgis.MessageLevel.Critical, 8)
        self.finished.emit(ok, results, message)
