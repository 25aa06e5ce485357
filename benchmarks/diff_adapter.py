"""The diff family in the runner: :mod:`benchmarks.diff` measures, this records.

:mod:`benchmarks.diff` times the ``snapshot`` and ``tracked`` strategies,
``roupn.changes.diff`` and the peer libraries (jsonpatch, dictdiffer, deepdiff) on
app states of 100, 1,000 and 10,000 users with 1, 12 and 1,000 edits. This module
calls its ``run_all`` with a plan per mode, turns each row into measurements, and
runs its ``measure_strategy`` for any other registered diff strategy.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import time
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from roupn.plugins import BackendKind, get_registry

from .backends import load_backends
from .budget import Budget
from .report import format_seconds, seconds_cell
from .results import FamilyResult, Measurement, Progress, Recommendation, Skip, Table

__all__ = ["NAME", "run"]

NAME = "diff"

PEERS = ("jsonpatch", "dictdiffer", "deepdiff")
BUILT_IN = ("snapshot", "tracked")
PHASES = ("detect", "take", "apply", "revert")


@dataclass(frozen=True, slots=True)
class _Plan:
    """One call of ``run_all``: its sizes, edit counts, peers and repeats."""

    sizes: tuple[int, ...]
    edits: tuple[int, ...]
    peers: tuple[str, ...]
    repeat: int
    budget: float  # seconds of timed runs after which a measurement stops at 3


# deepdiff takes seconds per diff from 1,000 users on, and a copy of the 10,000-user
# state takes tens of milliseconds per run, so the quick plan measures the peers
# on smaller states and the largest state at 12 edits only.
PLANS: dict[str, tuple[_Plan, ...]] = {
    "smoke": (_Plan((100,), (1, 12), PEERS, 3, 0.01),),
    "quick": (
        _Plan((100,), (1, 12, 1_000), PEERS, 3, 0.02),
        _Plan((1_000,), (1, 12, 1_000), ("jsonpatch", "dictdiffer"), 3, 0.05),
        _Plan((10_000,), (12,), ("jsonpatch", "dictdiffer"), 3, 0.05),
    ),
    "full": (_Plan((100, 1_000, 10_000), (1, 12, 1_000), PEERS, 15, 2.0),),
}


def _edits(count: int) -> str:
    return f"{count:,} edit" if count == 1 else f"{count:,} edits"


def _load_diff_module() -> ModuleType:
    return importlib.import_module("benchmarks.diff")


def _record_row(
    result: FamilyResult, progress: Progress, entries: int, edits: int, row: Any
) -> None:
    figures = []
    for phase in PHASES:
        timing = getattr(row, phase, None)
        if timing is None:
            continue
        measurement = Measurement(
            NAME,
            phase,
            row.method,
            "s",
            list(timing.times),
            params={"entries": entries, "edits": edits},
            values={} if row.size is None else {"bytes": float(row.size)},
        )
        result.measurements.append(measurement)
        figures.append(f"{phase} {format_seconds(measurement.stats.median)}")
    size = "" if row.size is None else f", {row.size:,} bytes of changes"
    progress(
        f"[{NAME}] {row.method}, {entries:,} entries, {_edits(edits)}: "
        f"{', '.join(figures)} (medians){size}"
    )


def _skip_missing_peers(result: FamilyResult, mode: str) -> set[str]:
    installed = {name for name in PEERS if importlib.util.find_spec(name) is not None}
    for name in PEERS:
        if name not in installed:
            result.skipped.append(
                Skip(name, "not installed (pip install 'roupn[bench]' adds it)")
            )
    for plan in PLANS[mode]:
        for name in installed - set(plan.peers):
            sizes = ", ".join(f"{size:,}" for size in plan.sizes)
            result.skipped.append(
                Skip(
                    f"{name} at {sizes} entries",
                    f"too slow for the {mode} mode; the full mode measures it",
                )
            )
    return installed


def _measure_other_strategies(
    result: FamilyResult, progress: Progress, diff_module: ModuleType, mode: str
) -> None:
    """Measure registered strategies beyond the built-in two with the same code."""
    strategies, skipped = load_backends(BackendKind.DIFF_STRATEGY)
    result.skipped += skipped
    others = [(name, strategy) for name, strategy in strategies if name not in BUILT_IN]
    for plan in PLANS[mode]:
        for entries in plan.sizes:
            start = diff_module.make_document(entries)
            for edits in plan.edits:
                for _name, strategy in others:
                    row = diff_module.measure_strategy(
                        strategy, start, edits, plan.repeat, plan.budget
                    )
                    _record_row(result, progress, entries, edits, row)


def _table(result: FamilyResult) -> Table:
    table = Table(
        "diff: time per change set, median (IQR)",
        ["entries", "edits", "method", *PHASES, "bytes"],
        notes=[
            "detect: find the changes (tracked: the edits plus take_changes; "
            "peers: their diff). take: take_changes alone.",
            "apply and revert: on a copy of the starting state. bytes: the "
            "changes as compact JSON. diff: roupn.changes.diff alone.",
        ],
    )
    rows: dict[tuple[int, int, str], dict[str, Measurement]] = {}
    for measurement in result.measurements:
        key = (
            measurement.params["entries"],
            measurement.params["edits"],
            measurement.backend,
        )
        rows.setdefault(key, {})[measurement.benchmark] = measurement
    for (entries, edits, method), phases in rows.items():
        sizes = [m.values["bytes"] for m in phases.values() if "bytes" in m.values]
        table.rows.append(
            [
                f"{entries:,}",
                f"{edits:,}",
                method,
                *(
                    seconds_cell(phases[phase].stats) if phase in phases else "-"
                    for phase in PHASES
                ),
                f"{sizes[0]:,.0f}" if sizes else "-",
            ]
        )
    return table


def _recommend(result: FamilyResult, strategies: list[str]) -> None:
    """Advise the strategy that detects changes fastest in the largest state."""
    measured = [m for m in result.measurements if m.benchmark == "detect"]
    measured = [m for m in measured if m.backend in strategies]
    if not measured:
        return
    largest = max(m.params["entries"] for m in measured)
    by_edits: dict[int, dict[str, float]] = {}
    for measurement in measured:
        if measurement.params["entries"] == largest:
            edits = measurement.params["edits"]
            by_edits.setdefault(edits, {})[measurement.backend] = (
                measurement.stats.median
            )

    wins: dict[str, list[int]] = {}
    for edits, times in by_edits.items():
        wins.setdefault(min(times, key=times.__getitem__), []).append(edits)
    best = max(wins, key=lambda name: (len(wins[name]), -min(wins[name])))

    scope = "every edit count" if len(wins) == 1 else "most edit counts"
    sentences = [
        f"Finds the changes fastest in a state of {largest:,} users and "
        f"{largest:,} messages, at {scope} measured. Detect times, with the edits "
        "included for tracked"
    ]
    for edits in sorted(by_edits):
        listed = ", ".join(
            f"{name} {format_seconds(seconds)}"
            for name, seconds in sorted(by_edits[edits].items())
        )
        sentences.append(f"{_edits(edits)}: {listed}")
    for name, edits in wins.items():
        if name != best:
            counts = ", ".join(f"{count:,}" for count in sorted(edits))
            sentences.append(f"{name} is faster at these edit counts: {counts}")

    reason = ". ".join(sentences) + "."
    result.recommendations.append(
        Recommendation("diff strategy for large documents", best, reason)
    )


def run(budget: Budget, progress: Progress) -> FamilyResult:
    """Run :mod:`benchmarks.diff` with the mode's plan and record its rows."""
    started = time.perf_counter()
    result = FamilyResult(NAME)
    diff_module = _load_diff_module()
    installed = _skip_missing_peers(result, budget.mode)
    for plan in PLANS[budget.mode]:
        arguments = argparse.Namespace(
            sizes=list(plan.sizes),
            edits=list(plan.edits),
            repeat=plan.repeat,
            budget=plan.budget,
            peers=[name for name in plan.peers if name in installed],
        )
        for entries, edits, row in diff_module.run_all(arguments):
            _record_row(result, progress, entries, edits, row)
    _measure_other_strategies(result, progress, diff_module, budget.mode)
    result.tables.append(_table(result))
    _recommend(result, get_registry().names(BackendKind.DIFF_STRATEGY))
    result.seconds = time.perf_counter() - started
    return result
