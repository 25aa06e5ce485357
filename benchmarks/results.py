"""Records of one benchmark run: measurements, tables, skipped backends, advice."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .timing import Stats

__all__ = [
    "FamilyResult",
    "Measurement",
    "Progress",
    "Recommendation",
    "Skip",
    "Table",
]

# Prints one line of progress; the families call it once per finished benchmark.
Progress = Callable[[str], None]


@dataclass(slots=True)
class Measurement:
    """The samples of one benchmark on one backend, with figures derived from them.

    ``unit`` is the unit of ``samples``: ``"s"`` for seconds per operation, or a
    rate such as ``"deliveries/s"``. ``params`` contains the inputs (message size,
    senders), and ``values`` the figures derived from the median (rates, ratios,
    latency percentiles).
    """

    family: str
    benchmark: str
    backend: str
    unit: str
    samples: list[float]
    params: dict[str, Any] = field(default_factory=dict)
    values: dict[str, float] = field(default_factory=dict)

    @property
    def stats(self) -> Stats:
        """The median, quartiles and range of the samples."""
        return Stats.of(self.samples)

    def to_json(self) -> dict[str, Any]:
        """Return the measurement as a JSON object, its raw samples included."""
        return {
            "family": self.family,
            "benchmark": self.benchmark,
            "backend": self.backend,
            "unit": self.unit,
            "params": self.params,
            "samples": self.samples,
            "stats": self.stats.to_json(),
            "values": self.values,
        }


@dataclass(frozen=True, slots=True)
class Skip:
    """A backend or comparison that was not measured, and why."""

    subject: str
    reason: str

    def to_json(self) -> dict[str, str]:
        """Return the skip as a JSON object."""
        return {"subject": self.subject, "reason": self.reason}


@dataclass(slots=True)
class Table:
    """A printed table: a title, column headings and rows of formatted cells."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Recommendation:
    """The backend advised for one purpose on this machine, and the reason."""

    purpose: str
    backend: str
    reason: str

    def to_json(self) -> dict[str, str]:
        """Return the recommendation as a JSON object."""
        return {"purpose": self.purpose, "backend": self.backend, "reason": self.reason}


@dataclass(slots=True)
class FamilyResult:
    """Everything one family of benchmarks measured."""

    name: str
    measurements: list[Measurement] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    recommendations: list[Recommendation] = field(default_factory=list)
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def find(self, benchmark: str, backend: str, **params: Any) -> Measurement | None:
        """Return the first measurement of ``benchmark`` on ``backend`` with params."""
        for measurement in self.measurements:
            if (
                measurement.benchmark == benchmark
                and measurement.backend == backend
                and all(measurement.params.get(k) == v for k, v in params.items())
            ):
                return measurement
        return None

    def to_json(self) -> dict[str, Any]:
        """Return the family's results as a JSON object."""
        return {
            "seconds": self.seconds,
            "measurements": [m.to_json() for m in self.measurements],
            "skipped": [s.to_json() for s in self.skipped],
            "notes": self.notes,
            "recommendations": [r.to_json() for r in self.recommendations],
            **({"extra": self.extra} if self.extra else {}),
        }
