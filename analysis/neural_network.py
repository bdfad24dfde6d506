"""METHOD=neural_network: a small neural network (scikit-learn's MLPClassifier) on standardised embeddings.

One hidden layer of 128 ReLU units. On the bench's labels and on every non-linear label set tried (clusters of the
embedding space, XOR of two directions) it is 8 to 29 points more accurate than the random forest, and it classifies
a tile with two matrix products per block instead of ~2,000 tree nodes per pixel (bench/bench_classify.py).

Like every GeoEmbed model it is kept and applied as plain arrays (analysis/model_file.py): the band means and
scales it standardises with, then each layer's weights and biases.
"""

import warnings

import numpy as np

from .blas import matmul
from .predictors import FLOATS, INTEGERS, ModelDataError, Predictor, _check_classes, _check_finite, _softmax

HIDDEN_UNITS = (128,)
# scikit-learn's defaults (Adam, L2 penalty 1e-4, stop when the loss improves by < 1e-4 for 10 epochs), with room
# for the 150-450 epochs 2,000 samples take
SETTINGS = {"activation": "relu", "solver": "adam", "alpha": 1e-4, "max_iter": 500}
MAX_LAYERS = 4  # hidden layers a file may declare (train fits one): a header and 3 + 2 x 5 arrays
MAX_UNITS = 4096
CHUNK_PIXELS = 2**14  # 16 MiB of float64 hidden values: products large enough for BLAS, small enough for memory


class NeuralNetworkPredictor(Predictor):
    """Standardise ((x - mean) / scale), then ReLU hidden layers, then the output layer: a softmax over the classes,
    or for two classes one logistic unit p giving [1 - p, p], as scikit-learn's MLPClassifier.predict_proba."""

    kind = "neural_network"

    def __init__(self, classes, mean, scale, weights, biases):
        super().__init__(classes)
        self.mean = np.asarray(mean, dtype=np.float64)
        self.scale = np.asarray(scale, dtype=np.float64)
        self.weights = [np.asarray(w, dtype=np.float64) for w in weights]
        self.biases = [np.asarray(b, dtype=np.float64) for b in biases]

    def predict_proba(self, features):
        values = np.array(features, dtype=np.float64)  # a copy, standardised in place
        values -= self.mean
        values /= self.scale
        last = len(self.weights) - 1
        for layer, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            values = matmul(values, weight)  # through SciPy's BLAS: NumPy's is GSL's reference CBLAS inside QGIS
            values += bias
            if layer < last:
                np.maximum(values, 0.0, out=values)
        if values.shape[1] == 1:
            with np.errstate(over="ignore"):  # exp overflows to inf for very negative scores: p is then 0, as it is
                positive = 1.0 / (1.0 + np.exp(-values[:, 0]))
            return np.stack([1.0 - positive, positive], axis=1)
        return _softmax(values)

    def chunk_pixels(self, bands):
        return CHUNK_PIXELS

    def params(self):
        return {**super().params(), "hidden": [len(b) for b in self.biases[:-1]]}

    def arrays(self):
        layers = {}
        for number, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            layers[f"weight_{number}"] = weight
            layers[f"bias_{number}"] = bias
        return {**super().arrays(), "mean": self.mean, "scale": self.scale, **layers}

    @staticmethod
    def layout(params, bands):
        hidden = params["hidden"]
        if not isinstance(hidden, list) or not 1 <= len(hidden) <= MAX_LAYERS:
            raise ModelDataError(f"its hidden layers are not a list of 1 to {MAX_LAYERS} sizes")
        if not all(type(units) is int and 1 <= units <= MAX_UNITS for units in hidden):
            raise ModelDataError(f"its hidden layer sizes are not whole numbers from 1 to {MAX_UNITS}")
        classes = params["classes"]
        if classes < 2:
            raise ModelDataError("it has fewer than two classes")
        sizes = [bands, *hidden, 1 if classes == 2 else classes]
        layers = {}
        for number, (inputs, outputs) in enumerate(zip(sizes, sizes[1:])):
            layers[f"weight_{number}"] = (FLOATS, (inputs, outputs))
            layers[f"bias_{number}"] = (FLOATS, (outputs,))
        return {"classes": (INTEGERS, (classes,)), "mean": (FLOATS, (bands,)), "scale": (FLOATS, (bands,)), **layers}

    @classmethod
    def from_arrays(cls, arrays, params, bands, n_classes):
        _check_classes(arrays["classes"], n_classes)
        layers = len(params["hidden"]) + 1
        weights = [arrays[f"weight_{number}"] for number in range(layers)]
        biases = [arrays[f"bias_{number}"] for number in range(layers)]
        for name, values in (("band means", arrays["mean"]), ("band scales", arrays["scale"]), *_named(weights, biases)):
            _check_finite(name, values)
        if (arrays["scale"] <= 0).any():
            raise ModelDataError("its band scales are not all positive")
        return cls(arrays["classes"], arrays["mean"], arrays["scale"], weights, biases)


def _named(weights, biases):
    for number, (weight, bias) in enumerate(zip(weights, biases)):
        yield f"layer {number + 1} weights", weight
        yield f"layer {number + 1} biases", bias


class NeuralNetwork(NeuralNetworkPredictor):
    """The estimator train fits (fit, then predict like any predictor): the band means and standard deviations
    (StandardScaler's; a constant band gets scale 1), then an MLPClassifier on the standardised float64 features.
    Standardising makes the network work on every product, whatever the range of its values."""

    def __init__(self, seed=0):
        super().__init__(np.zeros(0, dtype=np.int64), np.zeros(0), np.ones(0), [], [])
        self.seed = seed

    def fit(self, features, labels):
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier

        features = np.asarray(features, dtype=np.float64)
        mean = features.mean(axis=0)
        scale = features.std(axis=0)
        scale[scale == 0] = 1.0
        network = MLPClassifier(hidden_layer_sizes=HIDDEN_UNITS, random_state=self.seed, **SETTINGS)
        with warnings.catch_warnings():
            # the epoch limit stops the rare slow fit; its model is that of the last epoch, and the report says how
            # accurate it is
            warnings.simplefilter("ignore", ConvergenceWarning)
            network.fit((features - mean) / scale, labels)
        self.classes_ = np.asarray(network.classes_, dtype=np.int64)
        self.mean, self.scale = mean, scale
        self.weights = [np.asarray(w, dtype=np.float64) for w in network.coefs_]
        self.biases = [np.asarray(b, dtype=np.float64) for b in network.intercepts_]
        return self
