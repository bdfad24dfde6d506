"""The forest walk of issue 15 (in-place working arrays, a few thousand samples per step through every tree) reaches
the same leaves as scikit-learn: probabilities equal to the last bit for every sample count around a walk step, trees
of one leaf, shallow and full-depth trees, features at the thresholds, and a model file saved and loaded again.

Expectations come from scikit-learn itself (the fitted estimators, summed tree by tree with n_jobs=1), not from geoembed.
"""

import numpy as np
import pytest

from geoembed.analysis import model_file, predictors
from geoembed.analysis.classify import TrainedModel

pytest.importorskip("sklearn")

BANDS = 12


def labelled(n, seed):
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(1).normal(size=(4, BANDS))
    labels = rng.integers(0, 4, n)
    return (centres[labels] + 1.5 * rng.normal(size=(n, BANDS))).astype(np.float32), labels


def forest(**settings):
    from sklearn.ensemble import RandomForestClassifier

    features, labels = labelled(600, 0)
    return RandomForestClassifier(n_jobs=1, random_state=0, **settings).fit(features, labels)


@pytest.mark.parametrize(
    "settings",
    [{"n_estimators": 200}, {"n_estimators": 7, "max_depth": 3}, {"n_estimators": 5, "min_samples_leaf": 600}],
    ids=["full-depth", "shallow", "one-leaf-trees"],
)
def test_forest_probabilities_equal_sklearn_around_walk_steps(settings):
    estimator = forest(**settings)
    predictor = predictors.from_estimator(estimator)
    step = predictor.trees.walk_step()
    probe = labelled(4 * step + 3, 2)[0]
    for count in (1, step - 1, step, step + 1, len(probe)):
        features = probe[: max(count, 1)]
        # leaf fractions of impure leaves: scikit-learn >= 1.4 stores them divided once more (1 ulp apart at most)
        np.testing.assert_allclose(predictor.predict_proba(features), estimator.predict_proba(features), rtol=0, atol=1e-12)
        np.testing.assert_array_equal(predictor.predict(features), estimator.predict(features))


def test_walk_steps_bound_the_working_arrays_and_tile_a_chunk():
    predictor = predictors.from_estimator(forest(n_estimators=200))
    trees = predictor.trees
    assert trees.walk_step() * trees.count <= predictors.WALKS
    assert predictor.chunk_pixels(BANDS) % trees.walk_step() == 0  # no ragged step inside a chunk


def test_features_at_thresholds_and_transposed_columns_go_where_sklearn_sends_them():
    estimator = forest(n_estimators=20)
    predictor = predictors.from_estimator(estimator)
    probes = []
    base = labelled(1, 3)[0][0]
    for member in estimator.estimators_:
        tree = member.tree_
        for node in np.flatnonzero(tree.children_left >= 0)[:30]:
            at = np.float32(tree.threshold[node])
            for value in (at, np.nextafter(at, np.float32(-np.inf)), np.nextafter(at, np.float32(np.inf))):
                probe = base.copy()
                probe[tree.feature[node]] = value
                probes.append(probe)
    probes = np.array(probes, dtype=np.float32)
    columns = np.ascontiguousarray(probes.T)  # classify hands the walk a transposed view of a block's columns
    expected = estimator.predict_proba(probes)
    np.testing.assert_array_equal(predictor.predict_proba(columns.T), expected)
    np.testing.assert_array_equal(predictor.predict_proba(probes.astype(np.float64)), expected)


def test_saved_forest_predicts_identically_after_loading(tmp_path):
    estimator = forest(n_estimators=30)
    model = TrainedModel(estimator, list("ABCD"), [f"A{i:02d}" for i in range(BANDS)], "test", "random_forest")
    path = tmp_path / "forest.npz"
    model.save(str(path))
    _, loaded = model_file.load(str(path))
    probe = labelled(3 * loaded.trees.walk_step() + 1, 4)[0]
    np.testing.assert_array_equal(loaded.predict_proba(probe), estimator.predict_proba(probe))


def test_forest_regressor_shares_the_walk():
    from sklearn.ensemble import RandomForestRegressor

    features, labels = labelled(400, 5)
    estimator = RandomForestRegressor(n_estimators=40, n_jobs=1, random_state=0).fit(features, labels.astype(float))
    predictor = predictors.from_regressor(estimator)
    probe = labelled(2 * predictor.trees.walk_step() + 7, 6)[0]
    np.testing.assert_array_equal(predictor.predict(probe), estimator.predict(probe))
