"""Exponential backoff with full jitter (AWS architecture blog's recommendation)."""

from __future__ import annotations

import random


def backoff_delay(attempt: int, initial: float, maximum: float, rng: random.Random | None = None) -> float:
    """Delay before retry number ``attempt`` (1-based): uniform in [initial/2, min(max, initial*2**(n-1))]."""
    ceiling = min(maximum, initial * (2 ** max(attempt - 1, 0)))
    low = min(initial / 2, ceiling)
    return (rng or random).uniform(low, ceiling)
