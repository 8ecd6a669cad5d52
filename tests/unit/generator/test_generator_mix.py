import random
import statistics

import pytest

from gourmetgram.common.settings import GeneratorSettings
from gourmetgram.generator.mix import EventMix, parse_mix, poisson_arrivals


def test_default_mix_is_the_labs_weighted_table() -> None:
    default = GeneratorSettings.model_fields["generator_event_mix"].default
    assert parse_mix(default) == {"view": 0.68, "comment": 0.20, "upload": 0.07, "user": 0.03, "flag": 0.02}


@pytest.mark.parametrize("spec", ["view", "view=abc", "like=0.5", "view=-1", "view=0,comment=0", "", "view=nan"])
def test_bad_mix_specs_are_rejected(spec: str) -> None:
    with pytest.raises(ValueError):
        parse_mix(spec)


def test_missing_kinds_get_zero_and_weights_are_relative() -> None:
    mix = EventMix.from_spec("view=3, comment=1")
    assert mix.kinds == ["view", "comment"]
    assert mix.probabilities == {"view": 0.75, "comment": 0.25}


def test_sampling_follows_the_weights() -> None:
    mix = EventMix.from_spec("view=0.68,comment=0.20,upload=0.07,user=0.03,flag=0.02")
    rng = random.Random(7)
    n = 50_000
    draws = [mix.sample(rng) for _ in range(n)]
    for kind, p in mix.probabilities.items():
        observed = draws.count(kind) / n
        sigma = (p * (1 - p) / n) ** 0.5
        assert abs(observed - p) < 5 * sigma, (kind, observed, p)


def test_poisson_gaps_have_the_configured_mean_and_spread() -> None:
    rate_per_hour = 3000.0  # mean gap 1.2 s
    gen = poisson_arrivals(rate_per_hour, random.Random(1))
    times = [next(gen) for _ in range(20_000)]
    gaps = [b - a for a, b in zip([0.0, *times[:-1]], times, strict=True)]
    assert statistics.fmean(gaps) == pytest.approx(1.2, rel=0.03)
    assert statistics.stdev(gaps) == pytest.approx(1.2, rel=0.05)  # exponential: sd == mean
    assert all(g > 0 for g in gaps)


def test_schedule_is_absolute_so_latency_cannot_slow_it() -> None:
    # The schedule is a function of the seed only: the n-th arrival time does not depend on how
    # long earlier requests took, so the achieved rate equals the configured one.
    a = poisson_arrivals(36_000, random.Random(3), start=100.0)
    b = poisson_arrivals(36_000, random.Random(3), start=100.0)
    ta = [next(a) for _ in range(1000)]
    tb = [next(b) for _ in range(1000)]
    assert ta == tb
    assert (ta[-1] - 100.0) == pytest.approx(100.0, rel=0.1)  # 1000 events at 10/s


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError):
        next(poisson_arrivals(0, random.Random()))
