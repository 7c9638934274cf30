"""Series summaries tell an SRE what a metric did: trends, limits, spikes, steps, restarts."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oncallm.sources.metrics import Point
from oncallm.triage.series import (
    describe,
    downsample,
    format_duration,
    format_value,
    segments,
    summarise,
)

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC).timestamp()
MIB = 2.0**20


def at(i: int) -> float:
    """The i-th one-minute scrape after 10:00 UTC."""
    return T0 + 60.0 * i


def series(values: list[float]) -> tuple[Point, ...]:
    return tuple((at(i), v) for i, v in enumerate(values))


def noisy(level: float, n: int, spread: float, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [level + rng.gauss(0, spread) for _ in range(n)]


def test_a_linear_ramp_towards_the_limit_is_rising_with_the_time_left() -> None:
    points = series([(100 + i) * MIB for i in range(60)])  # +1 MiB a minute, up to 159 MiB

    s = summarise(points, limit=200 * MIB)

    assert s is not None
    assert s.trend == "rising"
    assert s.r2 == pytest.approx(1.0)
    assert s.slope_per_second == pytest.approx(MIB / 60)
    assert s.time_to_limit_seconds == pytest.approx(41 * 60)  # 41 MiB to go
    assert s.last_ratio == pytest.approx(159 / 200)
    assert (s.spikes, s.steps, s.resets) == ((), (), ())
    assert describe(s, "bytes") == (
        "rose steadily from 100 MiB to 159 MiB over 59 min (+1 MiB/min), "
        "80% of the 200 MiB limit, reaching it in ~41 min at this rate"
    )


def test_at_or_over_the_limit_leaves_no_time() -> None:
    s = summarise(series([100.0, 150.0, 210.0]), limit=200.0)

    assert s is not None
    assert s.time_to_limit_seconds == 0
    assert s.peak_ratio == pytest.approx(1.05)


def test_a_falling_series_is_falling_and_never_reaches_the_limit() -> None:
    s = summarise(series([500.0 - 5 * i for i in range(40)]), limit=1000.0)

    assert s is not None
    assert s.trend == "falling"
    assert s.time_to_limit_seconds is None
    assert describe(s, "").startswith("fell steadily from 500 to 305 over 39 min (-5/min)")


def test_a_flat_noisy_series_is_flat_without_spikes_or_steps() -> None:
    s = summarise(series(noisy(100.0, 120, 3.0, seed=1)))

    assert s is not None
    assert s.trend == "flat"
    assert (s.spikes, s.steps, s.resets) == ((), (), ())
    assert 95 < s.mean < 105
    assert describe(s, "count") == f"flat at ~{format_value(s.mean, 'count')} over 1h 59m"


def test_a_constant_series_is_flat_with_no_fit() -> None:
    s = summarise(series([0.5] * 10))

    assert s is not None
    assert (s.trend, s.slope_per_second, s.r2) == ("flat", 0.0, 0.0)
    assert describe(s, "ratio") == "flat at ~50% over 9 min"


def test_a_single_spike_is_found_at_its_time_with_its_baseline_and_is_not_a_step() -> None:
    values = noisy(180.0, 60, 2.0, seed=2)
    values[21] = 505.0

    s = summarise(series([v * MIB for v in values]))

    assert s is not None
    assert len(s.spikes) == 1
    spike = s.spikes[0]
    assert spike.at == at(21)
    assert spike.value == 505 * MIB
    assert spike.baseline == pytest.approx(180 * MIB, rel=0.02)
    assert (s.steps, s.resets) == ((), ())
    assert s.trend == "flat"
    assert describe(s, "bytes") == "spiked from ~180 MiB to 505 MiB at 10:21 UTC"


def test_a_level_shift_is_a_step_not_a_spike() -> None:
    values = noisy(100.0, 60, 2.0, seed=3) + noisy(300.0, 60, 2.0, seed=4)

    s = summarise(series(values))

    assert s is not None
    assert len(s.steps) == 1
    step = s.steps[0]
    assert step.at == at(60)
    assert step.before == pytest.approx(100, abs=3)
    assert step.after == pytest.approx(300, abs=3)
    assert (s.spikes, s.resets) == ((), ())


def test_a_step_reads_as_the_level_it_settled_at() -> None:
    s = summarise(series([0.09] * 12 + [0.71] * 40))

    assert s is not None
    assert describe(s, "ratio") == "flat at 71% for 39 min after a step up from 9% at 10:12 UTC"


def test_steps_are_at_most_three_strongest_first() -> None:
    levels = [100.0, 200.0, 120.0, 600.0, 300.0, 320.0 * 2]
    values = [level for level in levels for _ in range(30)]

    s = summarise(series(values))

    assert s is not None
    assert [round(st.after - st.before) for st in s.steps] == [480, 340, -300]


def test_a_ramp_is_never_a_step() -> None:
    s = summarise(series([100.0 + 10 * i for i in range(200)]))

    assert s is not None
    assert s.steps == ()


SAWTOOTH_MIB = [50.0 + 20 * i for i in range(20)] * 2 + [50.0 + 20 * i for i in range(10)]


def test_a_sawtooth_is_cut_at_its_resets_and_the_fit_describes_the_last_container() -> None:
    points = series([v * MIB for v in SAWTOOTH_MIB])

    s = summarise(points, limit=450 * MIB)

    assert s is not None
    assert [(r.at, r.before / MIB, r.after / MIB) for r in s.resets] == [
        (at(20), 430, 50),
        (at(40), 430, 50),
    ]
    assert [len(seg) for seg in segments(points)] == [20, 20, 10]
    assert (s.spikes, s.steps) == ((), ())
    assert (s.segment_start, s.segment_end) == (at(40), at(49))
    assert s.trend == "rising"
    assert s.r2 == pytest.approx(1.0)
    assert s.slope_per_second == pytest.approx(20 * MIB / 60)
    assert s.time_to_limit_seconds == pytest.approx(11 * 60)  # from 230 MiB at +20 MiB/min
    assert (s.min, s.max) == (50 * MIB, 430 * MIB)  # the window, across restarts
    assert describe(s, "bytes") == (
        "rose steadily from 50 MiB to 230 MiB over 9 min (+20 MiB/min), 51% of the "
        "450 MiB limit (peak 96%), reaching it in ~11 min at this rate; restarted 2 times"
    )


def test_until_describes_the_container_that_was_killed() -> None:
    points = series([v * MIB for v in SAWTOOTH_MIB])
    oom_killed = at(39) + 20  # between the last scrape of the second instance and the restart

    s = summarise(points, limit=450 * MIB, until=oom_killed)

    assert s is not None
    assert len(s.resets) == 1
    assert (s.segment_start, s.segment_end) == (at(20), at(39))
    assert s.trend == "rising"
    assert s.time_to_limit_seconds == pytest.approx(60)  # 430 of 450 MiB at +20 MiB/min
    assert s.last == 430 * MIB
    assert describe(s, "bytes").endswith(
        "96% of the 450 MiB limit, reaching it in ~1 min at this rate; restarted once"
    )


def test_a_reset_as_the_last_point_describes_the_instance_before_it() -> None:
    s = summarise(series([100.0, 200.0, 300.0, 400.0, 10.0]))

    assert s is not None
    assert len(s.resets) == 1
    assert (s.segment_start, s.segment_end, s.trend) == (at(0), at(3), "rising")


def test_a_drop_from_a_level_that_never_rose_is_a_step_down_not_a_restart() -> None:
    s = summarise(series([400.0] * 10 + [100.0] * 10))

    assert s is not None
    assert s.resets == ()
    assert [(st.before, st.after) for st in s.steps] == [(400, 100)]


def test_a_container_sitting_at_its_limit_then_restarting_is_a_reset() -> None:
    values = [100.0 + 40 * i for i in range(10)] + [495.0, 500.0] * 10 + [30.0, 60.0, 90.0]

    assert [len(seg) for seg in segments(series(values))] == [30, 3]


def test_a_window_that_opens_half_way_up_a_climb_still_sees_the_restart() -> None:
    # 690 → 760 MiB, killed, then a new container from 180 MiB: never 1.2x its own start.
    values = [(690 + 7 * i) * MIB for i in range(11)] + [(180 + 12 * i) * MIB for i in range(20)]

    assert [len(seg) for seg in segments(series(values))] == [11, 20]


def test_a_climb_that_restarts_above_half_its_peak_is_still_a_restart() -> None:
    # A leaking container restarts near where it began: 95 → 255 MiB, then 95 again.
    climb = [(95 + 16 * i) * MIB for i in range(11)]

    assert [len(seg) for seg in segments(series(climb * 3))] == [11, 11, 11]


def test_noise_near_zero_does_not_restart() -> None:
    rng = random.Random(6)
    idle_cpu = [abs(rng.gauss(0.002, 0.002)) for _ in range(2000)]

    assert len(segments(series(idle_cpu))) == 1


def test_the_window_bounds_the_summary() -> None:
    points = series([float(i) for i in range(10)])

    s = summarise(points, since=at(2), until=at(5))

    assert s is not None
    assert (s.start, s.end, s.first, s.last, s.points) == (at(2), at(5), 2.0, 5.0, 4)
    assert summarise(points, since=at(9)) is None
    assert summarise(()) is None


def test_downsampling_keeps_the_spike_and_both_ends() -> None:
    values = noisy(100.0, 1000, 2.0, seed=5)
    values[537] = 1000.0
    points = series(values)

    small = downsample(points, 100)

    assert len(small) == 100
    assert (small[0], small[-1]) == (points[0], points[-1])
    assert (at(537), 1000.0) in small


def test_downsampling_a_small_series_returns_it_unchanged() -> None:
    points = series([1.0, 2.0, 3.0])

    assert downsample(points, 3) == points
    assert downsample(series([1.0, 5.0, 2.0, 4.0]), 2) == ((at(0), 1.0), (at(3), 4.0))
    with pytest.raises(ValueError, match="at least 2"):
        downsample(points, 1)


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (512 * MIB, "bytes", "512 MiB"),
        (1.5 * 2**30, "bytes", "1.5 GiB"),
        (1023.9 * 1024, "bytes", "1 MiB"),
        (300, "bytes", "300 B"),
        (0.49, "cores", "490m"),
        (1.5, "cores", "1.5"),
        (0, "cores", "0"),
        (0.71, "ratio", "71%"),
        (0.004, "ratio", "0.4%"),
        (3, "count", "3"),
        (12_345, "count", "12.3k"),
        (7500, "seconds", "2h 5m"),
        (45, "seconds", "45 s"),
        (0.012345, "", "0.0123"),
        (508.3, "", "508"),
        (-2.5, "", "-2.5"),
        (3, "req/s", "3 req/s"),
    ],
)
def test_values_are_formatted_as_people_read_them(value: float, unit: str, text: str) -> None:
    assert format_value(value, unit) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.25, "0.25 s"),
        (45, "45 s"),
        (59.7, "1 min"),
        (3300, "55 min"),
        (3600, "1h"),
        (90_000, "1d 1h"),
    ],
)
def test_durations_are_as_precise_as_a_person_needs(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


finite = st.floats(allow_nan=False, allow_infinity=False)
point_lists = st.lists(st.tuples(st.floats(0, 4e9), finite), max_size=80).map(sorted)


@given(point_lists, st.integers(2, 50))
def test_downsample_is_a_short_time_ordered_subsequence(points: list[Point], n: int) -> None:
    small = downsample(points, n)

    assert len(small) <= n
    assert [t for t, _ in small] == sorted(t for t, _ in small)
    remaining = iter(points)
    assert all(any(p == q for q in remaining) for p in small)  # a subsequence, in order
    if points:
        assert (small[0], small[-1]) == (points[0], points[-1])


@given(point_lists, st.one_of(st.none(), st.floats(1e-3, 1e15)))
def test_summarise_never_raises_and_the_mean_is_in_range(
    points: list[Point], limit: float | None
) -> None:
    s = summarise(points, limit=limit)

    if s is None:
        assert len(points) < 2
        return
    assert s.min <= s.mean <= s.max
    assert s.trend in ("rising", "falling", "flat")
    assert len(s.steps) <= 3
    assert isinstance(describe(s, "bytes"), str)
