import numpy as np

from clipbook import baselines
from clipbook.metrics import accuracy


def test_linear_probe_separates_separable_classes_and_picks_c_on_val():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 8)) * 3
    def sample(n):
        y = np.repeat(np.arange(3), n)
        return centres[y] + rng.normal(size=(len(y), 8)), y
    (xtr, ytr), (xva, yva), (xte, yte) = sample(4), sample(4), sample(50)
    probe = baselines.linear_probe(xtr, ytr, xva, yva)
    assert probe.C in baselines.LINEAR_PROBE_C_GRID
    assert accuracy(probe.predict(xte), yte) > 90
