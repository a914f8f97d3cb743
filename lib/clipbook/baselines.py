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
