"""Baselines that several papers compare against."""
from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from clipbook.metrics import accuracy

# CoOp's linear probe (lpclip/linear_probe.py) fits sklearn's L-BFGS logistic regression on CLIP
# features and picks the inverse regularisation C on the validation split.
LINEAR_PROBE_C_GRID = tuple(10.0 ** k for k in range(-2, 5))


def linear_probe(train_features, train_labels, val_features, val_labels,
                 c_grid=LINEAR_PROBE_C_GRID) -> LogisticRegression:
    """Logistic regression on (normalised) features, C chosen by validation accuracy."""
    as_np = lambda x: x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x)  # noqa: E731
    xtr, ytr, xva, yva = map(as_np, (train_features, train_labels, val_features, val_labels))
    best, best_acc = None, -1.0
    for c in c_grid:
        # L2 logistic regression has one optimum; solving to it (not to sklearn's default tol=1e-4)
        # makes the probe independent of the optimiser's path, which moves with scipy and BLAS builds
        probe = LogisticRegression(C=c, tol=1e-10, max_iter=20_000, random_state=0).fit(xtr, ytr)
        acc = accuracy(probe.predict(xva), yva)
        if acc > best_acc:  # first best wins: prefer stronger regularisation on ties
            best, best_acc = probe, acc
    return best


def baseline_curves(loaded, datasets, shots=(1, 2, 4, 8, 16), seeds=(1, 2, 3)) -> list[dict]:
    """Zero-shot accuracy and CoOp's linear-probe curve (k shots per class, C chosen on the min(k, 4)-shot val
    split, CoOp protocol splits per seed) of one model on each dataset: tidy rows (model, dataset, method,
    metric, value, shots, seed); the zero-shot row has no shots or seed. What the toy suite is calibrated on."""
    from clipbook.evaluation.classification import ClassificationTask
    from clipbook.progress import progress

    rows = []
    for name in progress(list(datasets), desc="baseline curves"):
        task = ClassificationTask(loaded, name)
        base = {"model": loaded.name, "dataset": name, "metric": "accuracy"}
        rows.append({**base, "method": "zero-shot CLIP", "value": task.zero_shot_accuracy()})
        x_train, y_train = task.features("train")
        x_val, y_val = task.features("val")
        x_test, y_test = task.features("test")
        for k in shots:
            for seed in seeds:
                split = task.few_shot_split(k, seed)
                probe = linear_probe(x_train[split["train"]], y_train[split["train"]],
                                     x_val[split["val"]], y_val[split["val"]])
                rows.append({**base, "method": "linear probe", "shots": k, "seed": seed,
                             "value": accuracy(probe.predict(x_test.numpy()), y_test.numpy())})
    return rows
