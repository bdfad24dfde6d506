"""The fast methods, METHOD=gradient_boosting and METHOD=neural_network, through Processing: geoembed:train offers
them, fits them, maps the classes and saves a model file of boosted trees or of network layers; geoembed:classify
applies that file and gets the same class map and confidence, which are the saved model's predictions for every
pixel."""

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsApplication

from geoembed.analysis.classify import load_model
from geoembed.analysis.neural_network import NeuralNetworkPredictor
from geoembed.analysis.predictors import BoostedTreesPredictor

from .labelled_embedding import labels_layer, load_labelled
from .refusals import run

pytest.importorskip("sklearn")

PREDICTORS = {"gradient_boosting": BoostedTreesPredictor, "neural_network": NeuralNetworkPredictor}


@pytest.fixture(scope="module")
def embedding(provider_ready, aef_mirror, tmp_path_factory):
    """A GeoEmbed layer (geoembed:load) and labelled points on it: three classes by position, on a 9 x 7 grid."""
    loaded = load_labelled(aef_mirror, tmp_path_factory.mktemp("fast-methods"))
    return {"path": loaded["path"], "labels": labels_layer(loaded)}


@pytest.fixture(scope="module", params=list(PREDICTORS))
def method(request):
    return request.param


@pytest.fixture(scope="module")
def trained(embedding, method, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"train-{method}")
    outputs = {
        "OUTPUT": str(folder / "classes.tif"),
        "OUTPUT_CONFIDENCE": str(folder / "confidence.tif"),
        "OUTPUT_MODEL": str(folder / "model.npz"),
    }
    parameters = {"INPUT": embedding["path"], "TRAINING": embedding["labels"], "FIELD": "class", "METHOD": method}
    results = run("train", {**parameters, **outputs})
    assert results["OUTPUT_MODEL"] == outputs["OUTPUT_MODEL"]
    return outputs


def read(path):
    dataset = gdal.Open(path)
    values = dataset.ReadAsArray()
    dataset = None
    return values


def test_train_offers_the_fast_methods(provider_ready):
    algorithm = QgsApplication.processingRegistry().algorithmById("geoembed:train")
    options = list(algorithm.parameterDefinition("METHOD").options())
    # appended: earlier indices keep their method; the forest stays the default
    assert options[0] == "random_forest" and options[-2:] == list(PREDICTORS)
    assert algorithm.parameterDefinition("METHOD").defaultValue() == "random_forest"


def test_the_model_file_holds_the_methods_predictor(trained, method):
    model = load_model(trained["OUTPUT_MODEL"])
    assert model.method == method and type(model.estimator) is PREDICTORS[method]
    assert model.class_names == ["a", "b", "c"]


def test_the_class_map_is_the_models_prediction_of_every_pixel(embedding, trained):
    model = load_model(trained["OUTPUT_MODEL"])
    values = read(embedding["path"]).astype(np.float32)
    classes = read(trained["OUTPUT"]).ravel()
    mapped = classes != 0  # 0: the layer's nodata
    assert mapped.mean() > 0.5
    index, probability = model.predict(values.reshape(values.shape[0], -1).T[mapped])
    np.testing.assert_array_equal(classes[mapped], index + 1)
    np.testing.assert_allclose(read(trained["OUTPUT_CONFIDENCE"]).ravel()[mapped], probability, rtol=1e-6)
    assert len(np.unique(index)) == 3


def test_classify_with_the_saved_model_maps_as_train(embedding, trained, tmp_path):
    classes, confidence = str(tmp_path / "classes.tif"), str(tmp_path / "confidence.tif")
    run(
        "classify",
        {"INPUT": embedding["path"], "MODEL": trained["OUTPUT_MODEL"], "OUTPUT": classes, "OUTPUT_CONFIDENCE": confidence},
    )
    np.testing.assert_array_equal(read(classes), read(trained["OUTPUT"]))
    np.testing.assert_array_equal(read(confidence), read(trained["OUTPUT_CONFIDENCE"]))
