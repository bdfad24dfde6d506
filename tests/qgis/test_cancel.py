"""Cancelling through QgsProcessingFeedback: a QgsProcessingException that says so, and no output."""

import pytest
from qgis.core import QgsApplication, QgsProcessingAlgorithm, QgsProcessingContext, QgsProcessingException, QgsProcessingFeedback


def run_instance(algorithm, parameters, context, feedback):
    """The public API on the algorithm object itself."""
    return algorithm.run(parameters, context, feedback, {}, False)


def run_base(algorithm, parameters, context, feedback):
    """The C++ QgsProcessingAlgorithm::run() (what qgis_process and the C++ side call)."""
    return QgsProcessingAlgorithm.run(algorithm, parameters, context, feedback, {}, False)


RUNS = {"algorithm.run": run_instance, "QgsProcessingAlgorithm.run": run_base}


@pytest.fixture()
def job(tile_2024_31n, tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    algorithm = QgsApplication.processingRegistry().createAlgorithmById("geoembed:load")
    assert algorithm is not None
    # 5 m pixels over the 3.2 x 2.56 km tile: 640 x 512 pixels, i.e. more than one 512-pixel block
    parameters = {"PRODUCT": "aef", "SOURCE": str(tile_2024_31n[1]), "RESOLUTION": 5, "OUTPUT": str(folder / "embeddings.tif")}
    return algorithm, parameters, folder


def assert_cancelled(caught, folder):
    message = str(caught.value.args[0]) if caught.value.args else str(caught.value)
    assert "cancel" in message.lower(), message
    assert "\n" not in message.strip(), message
    assert list(folder.iterdir()) == [], f"left behind: {[p.name for p in folder.iterdir()]}"


@pytest.mark.parametrize("run", list(RUNS))
def test_cancel_before_running(run, job):
    algorithm, parameters, folder = job
    feedback = QgsProcessingFeedback()
    feedback.cancel()
    with pytest.raises(QgsProcessingException) as caught:
        RUNS[run](algorithm, parameters, QgsProcessingContext(), feedback)
    assert_cancelled(caught, folder)


@pytest.mark.parametrize("run", list(RUNS))
def test_cancel_while_running(run, job):
    algorithm, parameters, folder = job
    feedback = QgsProcessingFeedback()
    progress = []

    def on_progress(value):
        progress.append(value)
        if 0 < value < 100:
            feedback.cancel()  # as the Cancel button does, mid-way

    feedback.progressChanged.connect(on_progress)
    with pytest.raises(QgsProcessingException) as caught:
        RUNS[run](algorithm, parameters, QgsProcessingContext(), feedback)
    assert any(0 < value < 100 for value in progress), f"no progress reported before the end: {progress}"
    assert_cancelled(caught, folder)


@pytest.mark.parametrize("run", list(RUNS))
def test_uncancelled_run_reports_progress_to_100(run, job):
    algorithm, parameters, folder = job
    feedback = QgsProcessingFeedback()
    progress = []
    feedback.progressChanged.connect(progress.append)
    results, ok = RUNS[run](algorithm, parameters, QgsProcessingContext(), feedback)
    assert ok and results["OUTPUT"] == parameters["OUTPUT"]
    assert progress and progress[-1] == 100 and progress == sorted(progress)
    assert [p.name for p in folder.iterdir()] == ["embeddings.tif"]
