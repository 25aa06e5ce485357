"""Measure the diff strategies, and other JSON diff libraries, on an app's state.

Run ``python -m benchmarks.diff`` (``--help`` lists the options). The document
contains N users (name, status, settings), N messages (author, text, time) and room
settings. Each run makes 1, 12 or 1,000 value edits to it: status and volume
changes, message edits, appended and deleted messages, and renamed users and rooms.

Columns, each the median over the repeats with the min-max range:

- detect: the time to find the changes. For ``snapshot``, ``take_changes()``
  after the edits. For ``tracked``, the edits plus ``take_changes()``, because
  tracking costs time during the edits. For the other libraries, their diff.
- take: ``take_changes()`` alone, after the edits.
- apply: applying the changes to a copy of the starting document; for the
  strategies, through a tracker's ``apply()``, which also builds the inverse.
- revert: undoing them; for the strategies, applying the inverse from ``apply()``.
  Changes cannot insert, so the inverse of deleting a message below the end sets
  every later message, and apply and revert grow with the number of messages
  when the edits delete some.
- bytes: the change list as compact JSON.

``diff`` is ``roupn.changes.diff`` alone, which the snapshot strategy runs
before updating its copy. jsonpatch, dictdiffer and deepdiff (``pip install
'roupn[bench]'``) are measured on the same document pairs when installed.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import random
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from roupn_diff.snapshot import SnapshotStrategy
from roupn_diff.tracked import TrackedStrategy

from roupn.changes import apply_changes, copy_json, diff
from roupn.interfaces import DiffStrategy

STATUSES = ("online", "away", "busy", "offline")
WORDS = (
    "hello",
    "room",
    "meeting",
    "at",
    "noon",
    "see",
    "you",
    "there",
    "ok",
    "thanks",
)


# The document and its edits.


def make_document(entries: int, seed: int = 1) -> dict[str, Any]:
    """Return an app state with ``entries`` users and ``entries`` messages."""
    rng = random.Random(seed)
    users = [
        {
            "id": f"user-{i:05d}",
            "name": f"User {i}",
            "status": rng.choice(STATUSES),
            "settings": {
                "theme": rng.choice(("light", "dark")),
                "notifications": rng.random() < 0.5,
                "volume": rng.randint(0, 10),
                "language": "en",
            },
        }
        for i in range(entries)
    ]
    messages = [make_message(rng, i, entries) for i in range(entries)]
    settings = {"title": "Planning", "maxUsers": 50, "public": False, "tags": ["work"]}
    return {"users": users, "messages": messages, "settings": settings}


def make_message(rng: random.Random, number: int, users: int) -> dict[str, Any]:
    return {
        "id": f"message-{number:06d}",
        "author": f"user-{rng.randrange(users):05d}",
        "text": " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12))),
        "time": 1_700_000_000_000 + number * 1_000,
    }


def make_edits(document: dict[str, Any], count: int, seed: int = 2) -> None:
    """Make ``count`` value edits in place; the same seed makes the same edits."""
    rng = random.Random(seed)
    users = document["users"]
    messages = document["messages"]
    for number in range(count):
        roll = rng.random()
        if roll < 0.4:
            users[rng.randrange(len(users))]["status"] = rng.choice(STATUSES)
        elif roll < 0.55:
            users[rng.randrange(len(users))]["settings"]["volume"] = rng.randint(0, 10)
        elif roll < 0.75 and messages:
            message = messages[rng.randrange(len(messages))]
            message["text"] = message["text"] + " (edited)"
        elif roll < 0.85:
            messages.append(make_message(rng, 900_000 + number, len(users)))
        elif roll < 0.9 and messages:
            messages.pop(rng.randrange(len(messages)))
        elif roll < 0.95:
            users[rng.randrange(len(users))]["name"] = f"Renamed {number}"
        else:
            document["settings"]["title"] = f"Planning {number}"


# Timing.


@dataclass
class Timing:
    """Run times of one measurement, in seconds."""

    times: list[float]

    def __str__(self) -> str:
        median = statistics.median(self.times)
        return (
            f"{_milliseconds(median)} "
            f"({_milliseconds(min(self.times))}-{_milliseconds(max(self.times))})"
        )


def _milliseconds(seconds: float) -> str:
    value = seconds * 1000
    if value < 1:
        return f"{value:.3f}"
    if value < 100:
        return f"{value:.2f}"
    return f"{value:.0f}"


def measure(
    setup: Callable[[], Any], run: Callable[[Any], Any], repeat: int, budget: float
) -> Timing:
    """Time ``run(setup())`` ``repeat`` times; fewer, but at least 3, if slow.

    Only ``run`` is timed, with the garbage collector off as :mod:`timeit` does,
    so that collecting the garbage of ``setup`` does not land in the times. Once
    the timed runs add up to ``budget`` seconds, the measurement stops after the
    third run.
    """
    times: list[float] = []
    while len(times) < repeat:
        state = setup()
        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter()
            run(state)
            times.append(time.perf_counter() - start)
        finally:
            gc.enable()
        if len(times) >= 3 and sum(times) > budget:
            break
    return Timing(times)


@dataclass
class Row:
    """One line of the results table."""

    method: str
    detect: Timing | None = None
    take: Timing | None = None
    apply: Timing | None = None
    revert: Timing | None = None
    size: int | None = None


# Measurements.


def measure_strategy(
    strategy: DiffStrategy,
    start: dict[str, Any],
    edits: int,
    repeat: int,
    budget: float,
) -> Row:
    def tracker_with_edits() -> Any:
        tracker = strategy.track(copy_json(start))
        make_edits(tracker.document, edits)
        return tracker

    def edit_and_take(tracker: Any) -> Any:
        make_edits(tracker.document, edits)
        return tracker.take_changes()

    take = measure(tracker_with_edits, lambda t: t.take_changes(), repeat, budget)
    if strategy.name == "tracked":
        detect = measure(
            lambda: strategy.track(copy_json(start)), edit_and_take, repeat, budget
        )
    else:
        detect = take
    changes = tracker_with_edits().take_changes()

    def tracker_applied() -> tuple[Any, list[Any]]:
        tracker = strategy.track(copy_json(start))
        return tracker, tracker.apply(changes)

    apply = measure(
        lambda: strategy.track(copy_json(start)),
        lambda t: t.apply(changes),
        repeat,
        budget,
    )
    revert = measure(
        tracker_applied, lambda state: state[0].apply(state[1]), repeat, budget
    )
    return Row(strategy.name, detect, take, apply, revert, encoded_size(changes))


def measure_diff(
    start: dict[str, Any], edited: dict[str, Any], repeat: int, budget: float
) -> Row:
    changes = diff(start, edited)
    return Row(
        "diff",
        detect=measure(lambda: None, lambda _: diff(start, edited), repeat, budget),
        size=encoded_size(changes),
    )


def measure_jsonpatch(
    start: dict[str, Any], edited: dict[str, Any], repeat: int, budget: float
) -> Row:
    import jsonpatch

    patch = jsonpatch.make_patch(start, edited)
    return Row(
        "jsonpatch",
        detect=measure(
            lambda: None, lambda _: jsonpatch.make_patch(start, edited), repeat, budget
        ),
        apply=measure(
            lambda: copy_json(start),
            lambda doc: jsonpatch.apply_patch(doc, patch, in_place=True),
            repeat,
            budget,
        ),
        size=len(patch.to_string().encode()),
    )


def measure_dictdiffer(
    start: dict[str, Any], edited: dict[str, Any], repeat: int, budget: float
) -> Row:
    import dictdiffer  # type: ignore[import-untyped]

    result = list(dictdiffer.diff(start, edited))
    return Row(
        "dictdiffer",
        detect=measure(
            lambda: None, lambda _: list(dictdiffer.diff(start, edited)), repeat, budget
        ),
        apply=measure(
            lambda: copy_json(start),
            lambda doc: dictdiffer.patch(result, doc, in_place=True),
            repeat,
            budget,
        ),
        revert=measure(
            lambda: copy_json(edited),
            lambda doc: dictdiffer.revert(result, doc, in_place=True),
            repeat,
            budget,
        ),
        size=encoded_size(result),
    )


def measure_deepdiff(
    start: dict[str, Any], edited: dict[str, Any], repeat: int, budget: float
) -> Row:
    from deepdiff import DeepDiff, Delta

    result = DeepDiff(start, edited)
    delta = Delta(result, bidirectional=True, mutate=True)
    return Row(
        "deepdiff",
        detect=measure(lambda: None, lambda _: DeepDiff(start, edited), repeat, budget),
        apply=measure(
            lambda: copy_json(start), lambda doc: doc + delta, repeat, budget
        ),
        revert=measure(
            lambda: copy_json(edited), lambda doc: doc - delta, repeat, budget
        ),
        size=len(result.to_json().encode()),
    )


PEERS: dict[str, Callable[[dict[str, Any], dict[str, Any], int, float], Row]] = {
    "jsonpatch": measure_jsonpatch,
    "dictdiffer": measure_dictdiffer,
    "deepdiff": measure_deepdiff,
}


def encoded_size(changes: Any) -> int:
    return len(json.dumps(changes, separators=(",", ":"), default=list).encode())


def check_peer(name: str) -> bool:
    try:
        __import__(name)
    except ImportError:
        print(
            f"note: {name} is not installed, so it is skipped; "
            "pip install 'roupn[bench]' to include it"
        )
        return False
    return True


def check_round_trip(start: dict[str, Any], edited: dict[str, Any], edits: int) -> None:
    """Stop if a strategy's changes do not turn ``start`` into ``edited``."""
    for strategy in (SnapshotStrategy(), TrackedStrategy()):
        tracker = strategy.track(copy_json(start))
        make_edits(tracker.document, edits)
        replayed = copy_json(start)
        apply_changes(replayed, tracker.take_changes())
        if replayed != edited:
            raise SystemExit(f"{strategy.name}: changes do not reproduce the edits")


# Output.


def table(rows: Iterator[tuple[int, int, Row]]) -> None:
    header = (
        "entries",
        "edits",
        "method",
        "detect ms",
        "take ms",
        "apply ms",
        "revert ms",
        "bytes",
    )
    widths = (7, 5, 10, 24, 24, 24, 24, 9)
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    for entries, edits, row in rows:
        cells = (
            f"{entries:,}",
            f"{edits:,}",
            row.method,
            _cell(row.detect),
            _cell(row.take),
            _cell(row.apply),
            _cell(row.revert),
            "-" if row.size is None else f"{row.size:,}",
        )
        print(
            "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)),
            flush=True,
        )


def _cell(timing: Timing | None) -> str:
    return "-" if timing is None else str(timing)


def run_all(arguments: argparse.Namespace) -> Iterator[tuple[int, int, Row]]:
    peers = [name for name in arguments.peers if check_peer(name)]
    for entries in arguments.sizes:
        start = make_document(entries)
        for edits in arguments.edits:
            edited = copy_json(start)
            make_edits(edited, edits)
            check_round_trip(start, edited, edits)
            for strategy in (SnapshotStrategy(), TrackedStrategy()):
                yield (
                    entries,
                    edits,
                    measure_strategy(
                        strategy, start, edits, arguments.repeat, arguments.budget
                    ),
                )
            yield (
                entries,
                edits,
                measure_diff(start, edited, arguments.repeat, arguments.budget),
            )
            for name in peers:
                yield (
                    entries,
                    edits,
                    PEERS[name](start, edited, arguments.repeat, arguments.budget),
                )


def _peer_names(text: str) -> list[str]:
    names = [name for name in text.split(",") if name]
    unknown = [name for name in names if name not in PEERS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown library {unknown[0]!r}: choose from {', '.join(PEERS)}"
        )
    return names


def _numbers(text: str) -> list[int]:
    return [int(item.replace("_", "")) for item in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        type=_numbers,
        default=[100, 1_000, 10_000],
        help="users (and as many messages), comma-separated",
    )
    parser.add_argument(
        "--edits",
        type=_numbers,
        default=[1, 12, 1_000],
        help="value edits per run, comma-separated",
    )
    parser.add_argument(
        "--repeat", type=int, default=15, help="timed runs per measurement (default 15)"
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=2.0,
        help="seconds of timed runs after which a measurement "
        "stops at 3 runs or more (default 2)",
    )
    parser.add_argument(
        "--peers",
        type=_peer_names,
        default=list(PEERS),
        help="other libraries to measure, comma-separated, or '' for none "
        f"(default {','.join(PEERS)})",
    )
    arguments = parser.parse_args()

    print(
        f"Python {platform.python_version()} on {platform.machine()}, "
        f"{platform.system()}; times in ms, median (min-max)"
    )
    table(run_all(arguments))


if __name__ == "__main__":
    main()
