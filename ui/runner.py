"""Runs GeoEmbed Processing algorithms as background tasks for the dock panel (the toolbox's code path).

Outputs marked for loading are added to the project with the algorithm's own styling, exactly as the
Processing dialog does it; a failure becomes one line in the message bar and the details go to the log.
"""

from qgis.core import (
    Qgis,
    QgsApplication,
    QgsMessageLog,
    QgsProcessingAlgRunnerTask,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputLayerDefinition,
    QgsProject,
)
from qgis.PyQt.QtCore import QObject, pyqtSignal

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


class AlgorithmRun(QObject):
    """One algorithm running in a QgsTask. Emits progress(percent) and finished(ok, results, message)."""

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
        self.task.executed.connect(self._executed)
        QgsApplication.taskManager().addTask(self.task)
        return self

    def cancel(self):
        self.feedback.cancel()
        if self.task is not None:
            self.task.cancel()

    def _executed(self, ok, results):
        if ok and not self.feedback.isCanceled():  # a run cancelled too late to stop still adds nothing
            from processing.gui.Postprocessing import handleAlgorithmResults

            handleAlgorithmResults(self.algorithm, self.context, self.feedback, showResults=False, parameters=self.parameters)
            self._finish(True, dict(results), "")
        elif self.feedback.isCanceled():
            self._finish(False, {}, CANCELLED)
        else:
            self._finish(False, {}, self.feedback.errors[-1] if self.feedback.errors else "The algorithm failed; see the log.")

    def _finish(self, ok, results, message):
        self.done, self.ok, self.results, self.message = True, ok, results, message
        name = self.algorithm.displayName()
        if self.feedback.lines:
            QgsMessageLog.logMessage(f"{name}:\n" + "\n".join(self.feedback.lines), LOG_TAG, Qgis.Info)
        if not ok:
            first_line = message.strip().splitlines()[0] if message.strip() else "failed"
            level = Qgis.Warning if message == CANCELLED else Qgis.Critical
            QgsMessageLog.logMessage(f"{name} failed: {message}", LOG_TAG, level)
            if self.message_bar is not None and message != CANCELLED:
                self.message_bar.pushMessage(LOG_TAG, f"{name}: {first_line}", Qgis.Critical, 8)
        self.finished.emit(ok, results, message)
