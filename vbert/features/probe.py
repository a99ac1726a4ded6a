"""The linear probe: how much of a label a frozen feature holds, read by a logistic regression."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def linear_probe(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, seed: int = 0
) -> float:
    """Accuracy on (test_x, test_y) of a logistic regression fitted on standardised train features [N, D]."""
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=2000, random_state=seed))
    probe.fit(np.asarray(train_x, dtype=np.float64), train_y)
    return float((probe.predict(np.asarray(test_x, dtype=np.float64)) == test_y).mean())
