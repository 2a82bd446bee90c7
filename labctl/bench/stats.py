"""Statistics for repeated timings: pure and deterministic (seeded bootstrap)."""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

NOISY_CV = 0.10  # a spread wider than this is flagged, not reported as clean
BOOTSTRAP_ROUNDS = 4000


@dataclass(frozen=True)
class Summary:
    n: int
    min: float
    median: float
    p95: float
    mean: float
    stdev: float
    cv: float  # stdev / mean

    @property
    def noisy(self) -> bool:
        return self.cv > NOISY_CV


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize(values: Sequence[float]) -> Summary:
    if not values:
        raise ValueError("no measurements")
    mean = statistics.fmean(values)
    stdev = statistics.stdev(values) if len(values) > 1 else 0.0
    return Summary(len(values), min(values), statistics.median(values),
                   percentile(values, 0.95), mean, stdev, stdev / mean if mean else 0.0)


@dataclass(frozen=True)
class Ratio:
    value: float  # median(slow) / median(fast)
    low: float  # 95 % bootstrap confidence interval
    high: float

    def overlaps(self, other: Ratio) -> bool:
        return self.low <= other.high and other.low <= self.high


def ratio_of_medians(slow: Sequence[float], fast: Sequence[float], seed: int = 1) -> Ratio:
    """How many times `fast` is faster than `slow`, with a percentile bootstrap
    interval: resample both sets with replacement, take the ratio of medians."""
    rng = random.Random(seed)
    value = statistics.median(slow) / statistics.median(fast)
    ratios = sorted(
        statistics.median(rng.choices(slow, k=len(slow)))
        / statistics.median(rng.choices(fast, k=len(fast)))
        for _ in range(BOOTSTRAP_ROUNDS))
    return Ratio(value, percentile(ratios, 0.025), percentile(ratios, 0.975))
