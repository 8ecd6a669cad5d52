"""Event mix (which kind of action happens next) and Poisson arrival times."""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Iterator

EVENT_KINDS = ("view", "comment", "upload", "user", "flag")


def parse_mix(spec: str) -> dict[str, float]:
    """``"view=0.68,comment=0.20,..."`` -> weights. Kinds left out get weight 0; weights need not sum to 1."""
    weights = dict.fromkeys(EVENT_KINDS, 0.0)
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        name, sep, value = part.partition("=")
        name = name.strip().lower()
        if not sep or name not in weights:
            raise ValueError(f"bad event mix entry {part!r}: expected kind=weight with kind in {EVENT_KINDS}")
        try:
            weight = float(value)
        except ValueError:
            raise ValueError(f"bad weight in event mix entry {part!r}") from None
        if weight < 0 or weight != weight:
            raise ValueError(f"weight must be >= 0 in {part!r}")
        weights[name] = weight
    if sum(weights.values()) <= 0:
        raise ValueError("event mix has no positive weight")
    return weights


class EventMix:
    def __init__(self, weights: dict[str, float]) -> None:
        total = sum(weights.values())
        self.kinds = [k for k in EVENT_KINDS if weights.get(k, 0) > 0]
        self.probabilities = {k: weights[k] / total for k in self.kinds}
        self._cumulative = list(itertools.accumulate(self.probabilities[k] for k in self.kinds))

    @classmethod
    def from_spec(cls, spec: str) -> EventMix:
        return cls(parse_mix(spec))

    def sample(self, rng: random.Random) -> str:
        i = bisect.bisect_right(self._cumulative, rng.random() * self._cumulative[-1])
        return self.kinds[min(i, len(self.kinds) - 1)]


def poisson_arrivals(rate_per_hour: float, rng: random.Random, start: float = 0.0) -> Iterator[float]:
    """Absolute arrival times of a Poisson process: exponential gaps with mean 3600/rate seconds.

    The times are fixed in advance of any request, so slow requests cannot lower the rate
    (the reference slept *after* each awaited request and ran slower than configured).
    """
    if rate_per_hour <= 0:
        raise ValueError("rate must be positive")
    rate_per_second = rate_per_hour / 3600.0
    t = start
    while True:
        t += rng.expovariate(rate_per_second)
        yield t
