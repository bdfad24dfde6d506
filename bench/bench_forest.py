"""Benchmark the random forest's settings: accuracy on bench_classify's labels against nodes walked per pixel.

bench_classify.py times the class map of the default forest beside the read of the tile. This bench measures what
fewer or shallower trees, or gradient boosting, would cost in accuracy: each setting is trained on the same 2,000
labelled points of the tile (four "land covers": the argmax of a random projection of the embeddings, projection seed 3
as bench_classify, and seeds 4 to 6), and scored on 4,000 held-out points. "visits" is the number of inner nodes a pixel
passes through over all trees (what the walk's time is proportional to); the verdict compares accuracy with TODAY's
default (200 full-depth trees) on the bench's projection: a setting may lose at most one point.

    .venv/bin/python bench/bench_forest.py [--size 4096]
"""

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import tests  # noqa: E402, F401 - puts the plugin (the repository root) on sys.path as `geoembed`
from bench.bench_analysis import existing_tile, open_input  # noqa: E402
from bench.bench_classify import HELD_OUT_POINTS, TRAIN_POINTS, labelled_points  # noqa: E402

SEEDS = (3, 4, 5, 6)  # 3: bench_classify's projection
FORESTS = {
    "200 trees (today)": {"n_estimators": 200},
    "100 trees": {"n_estimators": 100},
    "50 trees": {"n_estimators": 50},
    "200, min_samples_leaf 5": {"n_estimators": 200, "min_samples_leaf": 5},
    "200, max_samples 0.5": {"n_estimators": 200, "max_samples": 0.5},
    "200, max_depth 8": {"n_estimators": 200, "max_depth": 8},
}
BOOSTING = {  # HistGradientBoosting: one tree per class and iteration; not a saved GeoEmbed model kind (yet)
    "boosting 50 x depth 3": {"max_iter": 50, "max_depth": 3},
    "boosting 100 x depth 2": {"max_iter": 100, "max_depth": 2},
}

GRADIENT = {  # GradientBoostingClassifier, what geoembed:train fits for METHOD=gradient_boosting (a saved model kind)
    "gradient 50 x 2, lr 0.2, sub 0.5": {"n_estimators": 50, "max_depth": 2, "learning_rate": 0.2, "subsample": 0.5},
    "gradient 50 x 2, lr 0.2": {"n_estimators": 50, "max_depth": 2, "learning_rate": 0.2},
    "gradient 100 x 2": {"n_estimators": 100, "max_depth": 2},
    "gradient 50 x 3": {"n_estimators": 50, "max_depth": 3},
}


def gradient_visits(estimator, features):
    """Inner nodes per pixel over every regression tree (one per class and round)."""
    return sum(tree.decision_path(features).sum() / len(features) - 1 for tree in estimator.estimators_.ravel())


def forest_visits(estimator, features):
    return estimator.decision_path(features)[0].sum() / len(features) - len(estimator.estimators_)


def boosting_visits(estimator, features):
    """Inner nodes per pixel: each tree's depth at the leaf each pixel reaches, summed."""
    import numpy as np

    leaves = np.zeros(len(features))
    for trees in estimator._predictors:  # noqa: SLF001 - the fitted trees are kept only here
        for tree in trees:
            nodes = tree.nodes
            for row, sample in enumerate(features):
                node = 0
                while not nodes["is_leaf"][node]:
                    go_left = sample[nodes["feature_idx"][node]] <= nodes["num_threshold"][node]
                    node = nodes["left"][node] if go_left else nodes["right"][node]
                    leaves[row] += 1
    return leaves.mean()


def main():
    import numpy as np
    from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier, RandomForestClassifier

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096, help="tile side in pixels (default 4096)")
    args = parser.parse_args()
    tile = existing_tile(args.size)
    print(f"load average {os.getloadavg()[0]:.2f}")
    raster = open_input(tile)
    try:
        points = {seed: np.random.default_rng(seed).standard_normal((64, 4)) for seed in SEEDS}
        train = {seed: labelled_points(raster, TRAIN_POINTS, 3, p) for seed, p in points.items()}
        held = {seed: labelled_points(raster, HELD_OUT_POINTS, 11, p) for seed, p in points.items()}
    finally:
        raster.close()
    settings = [
        (name, RandomForestClassifier, {**s, "n_jobs": -1, "random_state": 0}, forest_visits) for name, s in FORESTS.items()
    ]
    settings += [
        (name, HistGradientBoostingClassifier, {**s, "early_stopping": False, "random_state": 0}, boosting_visits)
        for name, s in BOOSTING.items()
    ]
    settings += [(name, GradientBoostingClassifier, {**s, "random_state": 0}, gradient_visits) for name, s in GRADIENT.items()]
    today = None
    for name, kind, kwargs, visits in settings:
        started = time.perf_counter()
        scores, fitted = [], None
        for seed in SEEDS:
            estimator = kind(**kwargs).fit(*train[seed])
            scores.append(float((estimator.predict(held[seed][0]) == held[seed][1]).mean()))
            fitted = fitted or estimator
        today = scores[0] if today is None else today
        nodes = visits(fitted, held[SEEDS[0]][0][:500])
        ok = scores[0] >= today - 0.01
        print(
            f"{name:<26} {time.perf_counter() - started:6.1f} s  visits {nodes:6.0f} | accuracy {scores[0]:.1%} "
            f"(today's default {today:.1%}) {'PASS' if ok else 'FAIL'} | other labels "
            + " ".join(f"{s:.1%}" for s in scores[1:]),
            flush=True,
        )
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
