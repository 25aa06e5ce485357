"""Timing helpers: warm up, repeat a call under ``time.perf_counter``, summarize."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Stats", "time_each", "time_per_call"]

# Calls per repeat never exceed this, however fast the call is.
MAX_CALLS_PER_REPEAT = 1_000_000


@dataclass(frozen=True, slots=True)
class Stats:
    """The median, quartiles and range of a set of samples."""

    median: float
    q1: float
    q3: float
    min: float
    max: float
    count: int

    @classmethod
    def of(cls, samples: Sequence[float]) -> Stats:
        """Summarize samples. A single sample is its own median and quartiles.

        Raises:
            ValueError: ``samples`` is empty.
        """
        if not samples:
            raise ValueError("no samples to summarize: measure at least once")
        if len(samples) == 1:
            q1 = q3 = samples[0]
        else:
            q1, _, q3 = statistics.quantiles(samples, n=4, method="inclusive")
        return cls(
            median=statistics.median(samples),
            q1=q1,
            q3=q3,
            min=min(samples),
            max=max(samples),
            count=len(samples),
        )

    def to_json(self) -> dict[str, Any]:
        """Return the figures as a JSON object."""
        return {
            "median": self.median,
            "q1": self.q1,
            "q3": self.q3,
            "min": self.min,
            "max": self.max,
            "count": self.count,
        }


def _time_calls(function: Callable[[], object], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        function()
    return time.perf_counter() - started


def time_per_call(
    function: Callable[[], object],
    *,
    min_time: float,
    repeats: int,
    warmup_time: float | None = None,
) -> list[float]:
    """Return the seconds per call of ``function``, one sample per repeat.

    The call first runs for ``warmup_time`` seconds (``min_time`` when None), at
    least once. Then the calls per repeat double until one repeat lasts at least
    ``min_time`` seconds, and each of ``repeats`` repeats makes that many calls.
    """
    warmup_deadline = time.perf_counter() + (
        min_time if warmup_time is None else warmup_time
    )
    function()
    while time.perf_counter() < warmup_deadline:
        function()

    calls = 1
    while calls < MAX_CALLS_PER_REPEAT:
        elapsed = _time_calls(function, calls)
        if elapsed >= min_time:
            break
        # Jump close to the target at once when the first timings are far off.
        if elapsed > 0:
            calls = min(
                MAX_CALLS_PER_REPEAT, max(calls * 2, int(calls * min_time / elapsed))
            )
        else:
            calls *= 2
    return [_time_calls(function, calls) / calls for _ in range(repeats)]


def time_each(function: Callable[[], object], *, repeats: int) -> list[float]:
    """Return the seconds of each of ``repeats`` single calls, without a warm-up.

    For calls slow enough (a key pair generation, a whole handshake) that one call
    is a sample of its own.
    """
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return samples
