"""The two tests deploy impact rests on: two proportions (error ratios) and two samples' ranks (latency)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def normal_upper_tail(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2))


def two_proportion_z(errors_a: int, total_a: int, errors_b: int, total_b: int) -> tuple[float, float]:
    """z and the one-sided p-value that b's proportion is higher than a's (pooled two-proportion z-test)."""
    if total_a == 0 or total_b == 0:
        return 0.0, 1.0
    pooled = (errors_a + errors_b) / (total_a + total_b)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / total_a + 1 / total_b))
    if spread == 0:
        return 0.0, 1.0
    z = (errors_b / total_b - errors_a / total_a) / spread
    return z, normal_upper_tail(z)


def mann_whitney_greater(a: Sequence[float], b: Sequence[float]) -> float:
    """One-sided p-value that b tends to be larger than a (Mann-Whitney U, normal approximation, tie-corrected)."""
    n_a, n_b = len(a), len(b)
    if n_a == 0 or n_b == 0:
        return 1.0
    pooled = sorted([(value, 0) for value in a] + [(value, 1) for value in b])
    ranks_b = 0.0
    tie_term = 0.0
    index = 0
    while index < len(pooled):
        end = index
        while end + 1 < len(pooled) and pooled[end + 1][0] == pooled[index][0]:
            end += 1
        average_rank = (index + end) / 2 + 1
        ties = end - index + 1
        tie_term += ties**3 - ties
        ranks_b += average_rank * sum(1 for k in range(index, end + 1) if pooled[k][1] == 1)
        index = end + 1
    u_b = ranks_b - n_b * (n_b + 1) / 2
    n = n_a + n_b
    variance = n_a * n_b / 12 * ((n + 1) - tie_term / (n * (n - 1)))
    if variance <= 0:
        return 1.0
    # Continuity correction toward the null.
    z = (u_b - n_a * n_b / 2 - 0.5) / math.sqrt(variance)
    return normal_upper_tail(z)
