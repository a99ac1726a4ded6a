"""Recipe classification from the pooled VideoBERT output, and "more videos like this".

A linear probe (logistic regression on standardised pooled embeddings) is fitted on the training
videos and scored on the validation videos: accuracy and the confusion matrix. Nearest neighbours
by cosine similarity of the same embeddings give "more videos like this"; precision@k is the
share of a video's k nearest neighbours that are the same recipe.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vbert.errors import VbertError


def recipe_probe(
    train_x: np.ndarray, train_y: Sequence[str], test_x: np.ndarray, test_y: Sequence[str], seed: int = 0
) -> dict:
    """Fit on train, score on test: accuracy, labels, confusion [C, C] (rows true), predicted."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import confusion_matrix
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(set(train_y)) < 2:
        raise VbertError("recipe classification needs training videos of at least two recipe types")
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=2000, random_state=seed))
    probe.fit(np.asarray(train_x, np.float64), list(train_y))
    predicted = probe.predict(np.asarray(test_x, np.float64))
    labels = sorted(set(train_y) | set(test_y))
    return {
        "accuracy": 100.0 * float(np.mean(predicted == np.asarray(test_y))),
        "labels": labels,
        "confusion": confusion_matrix(list(test_y), list(predicted), labels=labels),
        "predicted": predicted.tolist(),
    }


def nearest_neighbours(x: np.ndarray, k: int = 5) -> np.ndarray:
    """[N, k] indices of each row's k most cosine-similar other rows."""
    x = np.asarray(x, np.float64)
    if len(x) < 2:
        raise VbertError("nearest neighbours need at least two videos")
    unit = x / np.linalg.norm(x, axis=1, keepdims=True).clip(min=1e-12)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    return np.argsort(-similarity, axis=1, kind="stable")[:, : min(k, len(x) - 1)]


def precision_at_k(neighbours: np.ndarray, labels: Sequence[str]) -> float:
    """Percent of neighbours sharing the query's label."""
    labels = np.asarray(labels)
    return 100.0 * float((labels[neighbours] == labels[:, None]).mean())
