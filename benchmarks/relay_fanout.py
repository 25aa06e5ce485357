"""Fan-out throughput: roupn's relay against a minimal ``websockets`` relay.

A room of 16 members, 4 of them sending 256-byte room messages, floods a relay
that runs in a process of its own. The load generator
(:mod:`benchmarks.relay_fanout_load`) runs in another and keeps up to ``window``
frames on their way to each member. Both relays run in the same way and in the
same run, one after the other: roupn's (:mod:`benchmarks.relay_server`) and the
baseline (:mod:`benchmarks.relay_baseline`), a few lines on
``websockets.asyncio`` that forward each frame with ``websockets.broadcast()``.

``python -m benchmarks.relay_fanout`` runs the comparison alone and prints the
frames per second of each relay and their ratio; the relay family of
``python -m benchmarks`` runs it too.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from .processes import ChildProcess
from .relay_fanout_load import event_loop_name

__all__ = [
    "BASELINE",
    "ROUPN",
    "WINDOW",
    "cpu_seconds",
    "flood",
    "main",
    "per_cpu_second",
]

ROOM_SIZE = 16
SENDERS = 4

# Frames that each member may still wait for: enough that the relay always has
# frames queued, few enough that the relay's send buffers stay small.
WINDOW = 64

ROUPN = "roupn"
BASELINE = "websockets broadcast()"

RELAY_MODULES = {
    ROUPN: "benchmarks.relay_server",
    BASELINE: "benchmarks.relay_baseline",
}

# Seconds for a child to start and report, and beyond each run's own length.
START_TIMEOUT = 60.0
SLACK = 30.0
DRAIN_TIMEOUT = 5.0


def flood(
    relay: str, warmup: float, duration: float, interval: float, window: int = WINDOW
) -> dict[str, Any]:
    """Flood a room of one relay (``ROUPN`` or ``BASELINE``); return the summary."""
    run_time = warmup + duration + DRAIN_TIMEOUT
    config: dict[str, Any] = {
        "room_size": ROOM_SIZE,
        "senders": SENDERS,
        "window": window,
        "warmup": warmup,
        "duration": duration,
        "interval": interval,
        "time_limit": START_TIMEOUT + run_time,
    }
    max_seconds = f"{config['time_limit'] + SLACK:.0f}"
    module = RELAY_MODULES[relay]
    with ChildProcess(module, "--max-seconds", max_seconds, terminate=True) as server:
        started = server.read(START_TIMEOUT)
        config["url"] = started["url"]
        with ChildProcess("benchmarks.relay_fanout_load", json.dumps(config)) as load:
            load.read_event("ready", START_TIMEOUT)
            # The generator's warm-up starts as it reports ready, so the relay's
            # CPU time is read around the measured time, give or take the delay
            # of one line through a pipe.
            time.sleep(warmup)
            cpu_before = cpu_seconds(started["pid"])
            time.sleep(duration)
            cpu_after = cpu_seconds(started["pid"])
            summary = load.read_event("result", run_time + SLACK)
            load.read_event("done", SLACK)
    summary["relay"] = relay
    summary["event_loop"] = event_loop_name()
    summary["relay_cpu"] = None
    if cpu_before is not None and cpu_after is not None:
        summary["relay_cpu"] = (cpu_after - cpu_before) / duration
    return summary


def cpu_seconds(pid: int) -> float | None:
    """Return the CPU time a process used, user plus system, or None off Linux."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return None
    # The fields after the command name, which may contain spaces, start with
    # the state, so utime and stime are the 12th and 13th of them.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def per_cpu_second(summary: dict[str, Any]) -> float | None:
    """Return the frames delivered per second of the relay's CPU time, if known."""
    cpu = summary.get("relay_cpu")
    if not cpu:
        return None
    seconds = len(summary["rates"]) * summary["interval"]
    rate: float = summary["delivered"] / seconds / cpu
    return rate


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def main(argv: list[str] | None = None) -> int:
    """Flood the relays in turns; print their median frames per second and ratio."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.relay_fanout")
    parser.add_argument(
        "--warmup", type=float, default=1.0, help="seconds (default: 1)"
    )
    parser.add_argument(
        "--duration", type=float, default=5.0, help="measured seconds (default: 5)"
    )
    parser.add_argument(
        "--interval", type=float, default=0.5, help="seconds per sample (default: 0.5)"
    )
    parser.add_argument(
        "--window",
        type=int,
        default=WINDOW,
        help=f"frames each member may wait for (default: {WINDOW})",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="runs of each relay, in turns, so that a change in the machine's "
        "load affects both alike (default: 3)",
    )
    parser.add_argument(
        "--relay",
        choices=(ROUPN, "baseline", "both"),
        default="both",
        help="which relay to flood (default: both)",
    )
    args = parser.parse_args(argv)

    relays = {ROUPN: [ROUPN], "baseline": [BASELINE], "both": [ROUPN, BASELINE]}
    rates: dict[str, list[float]] = {relay: [] for relay in relays[args.relay]}
    efficiency: dict[str, list[float]] = {relay: [] for relay in rates}
    for round_number in range(1, args.rounds + 1):
        for relay in rates:
            summary = flood(
                relay, args.warmup, args.duration, args.interval, args.window
            )
            rates[relay] += summary["rates"]
            latency = summary["latency"]
            cpu_text = ""
            per_cpu = per_cpu_second(summary)
            if per_cpu is not None:
                efficiency[relay].append(per_cpu)
                cpu_text = (
                    f", relay CPU {summary['relay_cpu']:.0%}, "
                    f"{per_cpu:,.0f} frames per CPU second"
                )
            print(
                f"round {round_number}, {relay}: median "
                f"{_median(summary['rates']):,.0f} frames/s (min "
                f"{min(summary['rates']):,.0f}, max {max(summary['rates']):,.0f}), "
                f"latency p50 {latency.get('p50', 0) * 1e3:.2f} ms, p99 "
                f"{latency.get('p99', 0) * 1e3:.2f} ms{cpu_text}, "
                f"{summary['event_loop']}",
                flush=True,
            )

    medians = {relay: _median(samples) for relay, samples in rates.items()}
    for relay, median in medians.items():
        line = (
            f"{relay}: median {median:,.0f} frames/s over {len(rates[relay])} samples"
        )
        if efficiency[relay]:
            line += f", {_median(efficiency[relay]):,.0f} frames per relay CPU second"
        print(line)
    if len(medians) == 2:
        print(f"ratio roupn / baseline: {medians[ROUPN] / medians[BASELINE]:.2f}")
        if efficiency[ROUPN] and efficiency[BASELINE]:
            ratio = _median(efficiency[ROUPN]) / _median(efficiency[BASELINE])
            print(f"ratio per relay CPU second: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
