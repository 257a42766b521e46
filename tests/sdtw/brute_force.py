"""Brute-force references: enumerate every alignment of a small cost matrix (float64 numpy)."""

from __future__ import annotations

import numpy as np

STEPS = {"v": (1, 0), "h": (0, 1), "d": (1, 1)}


def alignments(n, m, *, subsequence=False, allowed=None):
    """All alignments as lists of (i, j, entered_by) with entered_by in {start, v, h, d}."""
    allowed = np.ones((n, m), bool) if allowed is None else np.asarray(allowed)
    starts = [(0, s) for s in range(m)] if subsequence else [(0, 0)]
    found = []

    def extend(path):
        i, j, _ = path[-1]
        if i == n - 1 and (subsequence or j == m - 1):
            found.append(list(path))
        for name, (di, dj) in STEPS.items():
            a, b = i + di, j + dj
            if a < n and b < m and allowed[a, b]:
                extend(path + [(a, b, name)])

    for i, j in starts:
        if allowed[i, j]:
            extend([(i, j, "start")])
    return found


def path_cost_and_grad(C, path, weights):
    w = {"start": 1.0, "v": weights[0], "h": weights[1], "d": weights[2]}
    grad = np.zeros_like(C)
    for i, j, how in path:
        grad[i, j] += w[how]
    return float(np.sum(grad * C)), grad


def soft_dtw(C, gamma, *, weights=(1.0, 1.0, 1.0), subsequence=False, allowed=None):
    """(value, gradient dvalue/dC) by enumeration; gamma = 0 gives hard DTW and a minimal path."""
    C = np.asarray(C, np.float64)
    paths = alignments(*C.shape, subsequence=subsequence, allowed=allowed)
    if not paths:
        return np.inf, np.zeros_like(C)
    costs, grads = zip(*(path_cost_and_grad(C, p, weights) for p in paths))
    costs = np.array(costs)
    if gamma == 0:
        best = int(np.argmin(costs))
        return costs[best], grads[best]
    low = costs.min()
    probs = np.exp(-(costs - low) / gamma)
    total = probs.sum()
    value = low - gamma * np.log(total)
    grad = sum(p * g for p, g in zip(probs / total, grads))
    return value, grad
