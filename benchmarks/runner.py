"""The benchmark runner behind ``python -m benchmarks`` and ``roupn bench``.

It runs the chosen families (diff, cipher, serializer, relay), prints a line per
finished benchmark and a table per family, writes the raw results as JSON when
asked, and ends with the backends it recommends for this machine.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import roupn

from . import backplane, cipher, diff_adapter, relay, serializer
from .budget import MODES, Budget
from .report import describe_machine, render_recommendations, render_table
from .results import FamilyResult, Recommendation

__all__ = ["FAMILIES", "main"]

FAMILIES: dict[str, Callable[[Budget, Callable[[str], None]], FamilyResult]] = {
    diff_adapter.NAME: diff_adapter.run,
    cipher.NAME: cipher.run,
    serializer.NAME: serializer.run,
    relay.NAME: relay.run,
    backplane.NAME: backplane.run,
}


def _family_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("no family given: name at least one")
    for name in names:
        if name not in FAMILIES:
            raise argparse.ArgumentTypeError(
                f"unknown family {name!r}: choose from {', '.join(FAMILIES)}"
            )
    return list(dict.fromkeys(names))


def build_parser(prog: str) -> argparse.ArgumentParser:
    """Return the runner's argument parser, shown under the name ``prog``."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Measure every registered roupn backend on this machine and "
        "recommend one of each kind.",
    )
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument(
        "--quick",
        action="store_const",
        const="quick",
        dest="mode",
        help="fewer repeats and shorter runs; under a minute on 2 cores",
    )
    modes.add_argument(
        "--smoke",
        action="store_const",
        const="smoke",
        dest="mode",
        help="the fewest samples that exercise every benchmark, for tests; the "
        "figures are rough",
    )
    parser.set_defaults(mode="full")
    parser.add_argument(
        "--only",
        type=_family_list,
        default=list(FAMILIES),
        metavar="FAMILIES",
        help=f"comma-separated families to run (default: {','.join(FAMILIES)})",
    )
    parser.add_argument(
        "--json",
        type=Path,
        metavar="PATH",
        help="write the raw results, every sample included, as JSON to PATH",
    )
    return parser


def _progress(line: str) -> None:
    print(line, flush=True)


def _load_average() -> list[float] | None:
    try:
        return list(os.getloadavg())
    except OSError:
        return None


def _print_family(result: FamilyResult) -> None:
    for table in result.tables:
        print()
        print(render_table(table))
    for skip in result.skipped:
        print(f"  skipped {skip.subject}: {skip.reason}")
    for note in result.notes:
        print(f"  {note}")
    print(f"  [{result.name}] took {result.seconds:.1f} s", flush=True)


def main(argv: Sequence[str] | None = None, prog: str = "python -m benchmarks") -> int:
    """Run the benchmarks; return 0, or 1 if a family failed."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(prog).parse_args(arguments)
    budget = MODES[args.mode]
    families: list[str] = args.only
    machine = describe_machine()
    started_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    load_before = _load_average()
    started = time.perf_counter()

    print(
        f"roupn {roupn.__version__} benchmarks, {budget.mode} mode: "
        f"{', '.join(families)}"
    )
    print(
        f"machine: {machine['cpu_model']}, {machine['cpus']} CPUs "
        f"({machine['usable_cpus']} usable), Python {machine['python']}, "
        f"{machine['system']}"
    )
    if load_before is not None:
        print(f"load average before: {', '.join(f'{x:.2f}' for x in load_before)}")

    results: dict[str, FamilyResult] = {}
    failures: dict[str, str] = {}
    for name in families:
        print(f"\n== {name}", flush=True)
        try:
            result = FAMILIES[name](budget, _progress)
        except Exception as exc:
            # One failed family must not lose the figures of the others.
            traceback.print_exc()
            failures[name] = f"{type(exc).__name__}: {exc}"
            print(f"[{name}] failed: {failures[name]}", file=sys.stderr, flush=True)
            continue
        results[name] = result
        _print_family(result)

    recommendations: list[Recommendation] = [
        advice for result in results.values() for advice in result.recommendations
    ]
    seconds = time.perf_counter() - started
    print()
    print(render_recommendations(recommendations))
    print(f"\n{len(results)} of {len(families)} families ran in {seconds:.1f} s")
    for name, message in failures.items():
        print(f"family {name} failed: {message}", file=sys.stderr)

    if args.json is not None:
        report: dict[str, Any] = {
            "roupn_version": roupn.__version__,
            "command": shlex.join([*shlex.split(prog), *arguments]),
            "mode": budget.mode,
            "families": families,
            "started_at": started_at,
            "seconds": seconds,
            "machine": machine,
            "load_average": {"before": load_before, "after": _load_average()},
            "results": {name: result.to_json() for name, result in results.items()},
            "failures": failures,
            "recommendations": [advice.to_json() for advice in recommendations],
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"raw results written to {args.json}")
    return 1 if failures else 0
