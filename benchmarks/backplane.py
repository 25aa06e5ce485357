"""The backplane family: one room on one relay process, and spread over two.

A room of 16 members is flooded with 256-byte room messages, as in the relay
family, in three setups:

- one relay process on the ``memory`` backplane,
- one relay process on the ``redis`` backplane,
- two relay processes on the ``redis`` backplane, which the members join in
  turn (the creator and every other joiner through the first).

Every relay runs in a process of its own (``benchmarks.relay_server``), the
load generator in another (``benchmarks.relay_load``), and Redis in a
``redis-server`` of its own, all on 127.0.0.1. Latencies run from the send to
each receiver's read.

Redis comes from ``ROUPN_REDIS_URL`` when it is set. Otherwise the family starts
``redis-server`` from the PATH on a free port, in a temporary folder, and stops
it afterwards. Without either, the family is skipped.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from typing import Any

from .budget import Budget
from .processes import ChildProcess
from .relay import SLACK, START_TIMEOUT, _flood_config, _record_flood
from .relay_load import MESSAGE_SIZE, ROOM_SIZE
from .report import format_rate, format_seconds
from .results import FamilyResult, Progress, Skip, Table

__all__ = ["NAME", "run"]

NAME = "backplane"

# Sender counts per mode: smoke keeps to two so that the family stays short.
SENDER_COUNTS = {"smoke": (1, 4), "quick": (1, 4, 16), "full": (1, 4, 16)}

MEMORY_ONE = "memory, 1 process"
REDIS_ONE = "redis, 1 process"
REDIS_TWO = "redis, 2 processes"


@contextlib.contextmanager
def _redis_server() -> Iterator[str | None]:
    """Yield the URL of a Redis server for the runs, or None if there is none."""
    url = os.environ.get("ROUPN_REDIS_URL")
    if url:
        yield url
        return
    server = shutil.which("redis-server")
    if server is None:
        yield None
        return
    with tempfile.TemporaryDirectory() as folder, socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        arguments = ["--bind", "127.0.0.1", "--port", str(port), "--dir", folder]
        arguments += ["--save", "", "--appendonly", "no"]
        process = subprocess.Popen(
            [server, *arguments],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise RuntimeError(
                            f"redis-server did not start on port {port}"
                        ) from None
                    time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            process.wait(timeout=10)


def _relay(max_seconds: float, redis_url: str | None, prefix: str) -> ChildProcess:
    arguments = ["--max-seconds", f"{max_seconds:.0f}"]
    if redis_url is not None:
        arguments += ["--backplane", "redis", "--redis-url", redis_url]
        arguments += ["--backplane-prefix", prefix]
    return ChildProcess("benchmarks.relay_server", *arguments, terminate=True)


def _flood(
    budget: Budget,
    progress: Progress,
    result: FamilyResult,
    setup: str,
    redis_url: str | None,
    processes: int,
) -> None:
    senders = list(SENDER_COUNTS[budget.mode])

    def renamed(line: str) -> None:
        progress(line.replace("[relay]", f"[{NAME}]", 1))

    config = _flood_config(budget, senders, budget.relay_duration)
    run_time = budget.relay_warmup + budget.relay_duration + 5.0
    prefix = f"bench-{uuid.uuid4().hex[:12]}"
    with contextlib.ExitStack() as stack:
        urls = []
        for _ in range(processes):
            relay = stack.enter_context(
                _relay(config["time_limit"] + SLACK, redis_url, prefix)
            )
            urls.append(relay.read(START_TIMEOUT)["url"])
        config["url"] = urls[0]
        config["urls"] = urls
        with ChildProcess("benchmarks.relay_load", json.dumps(config)) as load:
            load.read_event("ready", START_TIMEOUT)
            for _ in senders:
                summary = load.read_event("result", run_time + SLACK)
                _record_flood(result, renamed, summary, setup, "websockets")
                result.measurements[-1].family = NAME
            load.read_event("done", SLACK)


def _table(result: FamilyResult) -> Table:
    table = Table(
        f"backplane: a room of {ROOM_SIZE}, {MESSAGE_SIZE}-byte room messages",
        [
            "setup",
            "senders",
            "deliveries/s median (IQR)",
            "latency p50",
            "p90",
            "p99",
            "delivered",
        ],
    )
    for measurement in result.measurements:
        stats = measurement.stats
        values = measurement.values
        table.rows.append(
            [
                measurement.params["setup"],
                str(measurement.params["senders"]),
                f"{format_rate(stats.median)} ({format_rate(stats.q1)}"
                f"-{format_rate(stats.q3)})",
                format_seconds(values["p50"]),
                format_seconds(values["p90"]),
                format_seconds(values["p99"]),
                f"{values['delivered']:,.0f}",
            ]
        )
    table.notes += [
        "Each relay, the load generator and Redis run in processes of their own "
        "on 127.0.0.1; with 2 processes the members join the relays in turn.",
        "Each sender sends its next message once its previous one reached every "
        "receiver; deliveries/s counts frames read by all receivers, per interval.",
    ]
    return table


def run(budget: Budget, progress: Progress) -> FamilyResult:
    """Flood one room on the memory backplane and on Redis with 1 and 2 relays."""
    started = time.perf_counter()
    result = FamilyResult(NAME)
    with _redis_server() as redis_url:
        if redis_url is None:
            result.skipped.append(
                Skip(
                    "redis backplane",
                    "no Redis: set ROUPN_REDIS_URL or install redis-server",
                )
            )
        else:
            _flood(budget, progress, result, MEMORY_ONE, None, 1)
            _flood(budget, progress, result, REDIS_ONE, redis_url, 1)
            _flood(budget, progress, result, REDIS_TWO, redis_url, 2)
            result.tables.append(_table(result))
            _note_change(result)
    result.seconds = time.perf_counter() - started
    return result


def _note_change(result: FamilyResult) -> None:
    """Note how the busiest run changes from one to two relay processes."""
    busiest: dict[str, Any] = {}
    for measurement in result.measurements:
        setup = measurement.params["setup"]
        if setup not in busiest or (
            measurement.params["senders"] > busiest[setup].params["senders"]
        ):
            busiest[setup] = measurement
    if REDIS_ONE in busiest and REDIS_TWO in busiest:
        one, two = busiest[REDIS_ONE], busiest[REDIS_TWO]
        result.notes.append(
            f"With {one.params['senders']} senders, the redis backplane delivered "
            f"{format_rate(one.stats.median, '/s')} on 1 relay process and "
            f"{format_rate(two.stats.median, '/s')} on 2 (p50 "
            f"{format_seconds(one.values['p50'])} and "
            f"{format_seconds(two.values['p50'])})."
        )
