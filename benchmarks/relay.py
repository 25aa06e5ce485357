"""The relay family: deliveries per second, latency, and memory per idle socket.

A 16-member room floods through a relay with 1, 4 and 16 senders of 256-byte room
messages (272-byte ciphertext frames of random bytes, which the relay forwards
without decrypting). The relay runs in one process (``benchmarks.relay_server``)
and the load generator, raw ``websockets`` clients, in another
(``benchmarks.relay_load``), both on 127.0.0.1. Each sender sends its next message
as soon as its previous one reached every receiver, so one sender shows the
latency of an idle room and 16 senders the rate the relay sustains. Latencies run
from the send to each receiver's read, both timed in the generator.

Memory is the growth of the relay's resident set size (VmRSS from /proc) while
idle members join rooms of 16. The members join in four steps, and each gives one
sample of bytes per socket.

Every registered transport also runs the 4-sender flood with the relay and its
members in this process, which shows the transports' relative cost.

The fan-out run (:mod:`benchmarks.relay_fanout`) keeps a window of frames on
their way to each member instead, which measures the frames per second a busy
relay sustains, and measures a minimal ``websockets.broadcast()`` relay in turns
with roupn's for comparison.
"""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

import anyio

from roupn.plugins import BackendKind
from roupn.server import create_server_connector
from roupn.settings import Settings

from . import relay_fanout
from .backends import load_backends
from .budget import Budget
from .processes import ChildProcess, resident_memory
from .relay_load import DRAIN_TIMEOUT, MESSAGE_SIZE, ROOM_SIZE, WINDOW, flood_room
from .relay_room import transport_link_opener
from .relay_server import LOOPBACK
from .report import format_rate, format_seconds
from .results import FamilyResult, Measurement, Progress, Recommendation, Skip, Table

__all__ = ["NAME", "run"]

NAME = "relay"

SENDER_COUNTS = (1, 4, 16)
TRANSPORT_SENDERS = 4
IDLE_STEPS = 4

SEPARATE = "separate processes"
IN_PROCESS = "one process"

# Seconds for a child to start and report, and beyond each run's own length.
START_TIMEOUT = 60.0
SLACK = 30.0

# Seconds the relay's memory settles after a step before it is read.
SETTLE_TIME = 0.2


def _relay_process(max_seconds: float) -> ChildProcess:
    return ChildProcess(
        "benchmarks.relay_server",
        "--max-seconds",
        f"{max_seconds:.0f}",
        terminate=True,
    )


def _flood_config(
    budget: Budget, senders: list[int], duration: float
) -> dict[str, Any]:
    run_time = budget.relay_warmup + duration + DRAIN_TIMEOUT
    return {
        "mode": "flood",
        "room_size": ROOM_SIZE,
        "senders": senders,
        "warmup": budget.relay_warmup,
        "duration": duration,
        "interval": budget.relay_interval,
        "window": WINDOW,
        "time_limit": START_TIMEOUT + len(senders) * run_time,
    }


def _record_flood(
    result: FamilyResult,
    progress: Progress,
    summary: dict[str, Any],
    setup: str,
    transport: str,
) -> None:
    latency = summary["latency"]
    if not latency.get("count"):
        raise RuntimeError(
            f"no message arrived in the {transport} run with "
            f"{summary['senders']} senders: the relay delivered nothing"
        )
    measurement = Measurement(
        NAME,
        "deliveries",
        transport,
        "deliveries/s",
        summary["rates"],
        params={
            "setup": setup,
            "senders": summary["senders"],
            "receivers": summary["receivers"],
            "message_size": summary["message_size"],
            "window": summary["window"],
            "interval": summary["interval"],
        },
        values={
            "p50": latency["p50"],
            "p90": latency["p90"],
            "p99": latency["p99"],
            "max": latency["max"],
            "mean": latency["mean"],
            "latency_count": latency["count"],
            "delivered": float(summary["delivered"]),
            "sent": float(summary["sent"]),
            "unfinished": float(summary["unfinished"]),
        },
    )
    result.measurements.append(measurement)
    stats = measurement.stats
    progress(
        f"[{NAME}] {transport} ({setup}), {summary['senders']} senders: median "
        f"{format_rate(stats.median, ' deliveries/s')} (IQR "
        f"{format_rate(stats.q1)}-{format_rate(stats.q3)}), latency p50 "
        f"{format_seconds(latency['p50'])}, p99 {format_seconds(latency['p99'])}"
    )


# Runs.


def _flood_over_websockets(
    budget: Budget, progress: Progress, result: FamilyResult
) -> None:
    config = _flood_config(budget, list(SENDER_COUNTS), budget.relay_duration)
    run_time = budget.relay_warmup + budget.relay_duration + DRAIN_TIMEOUT
    with _relay_process(config["time_limit"] + SLACK) as relay:
        config["url"] = relay.read(START_TIMEOUT)["url"]
        with ChildProcess("benchmarks.relay_load", json.dumps(config)) as load:
            ready = load.read_event("ready", START_TIMEOUT)
            result.extra["join_seconds"] = ready["seconds"]
            for _ in SENDER_COUNTS:
                summary = load.read_event("result", run_time + SLACK)
                _record_flood(result, progress, summary, SEPARATE, "websockets")
            load.read_event("done", SLACK)


def _idle_memory(budget: Budget, progress: Progress, result: FamilyResult) -> None:
    step = max(1, budget.idle_sockets // IDLE_STEPS)
    steps = [step] * IDLE_STEPS
    config: dict[str, Any] = {
        "mode": "idle",
        "room_size": ROOM_SIZE,
        "steps": steps,
        "step_timeout": START_TIMEOUT,
        "time_limit": START_TIMEOUT * (IDLE_STEPS + 2),
    }
    with _relay_process(config["time_limit"] + SLACK) as relay:
        started = relay.read(START_TIMEOUT)
        config["url"] = started["url"]
        pid = started["pid"]
        if resident_memory(pid) is None:
            result.skipped.append(
                Skip("memory per idle socket", "/proc/PID/status is not readable here")
            )
            return
        with ChildProcess("benchmarks.relay_load", json.dumps(config)) as load:
            load.read_event("opened", START_TIMEOUT)
            time.sleep(SETTLE_TIME)
            baseline = previous = resident_memory(pid) or 0
            samples = []
            for size in steps:
                load.write("next")
                load.read_event("opened", START_TIMEOUT)
                time.sleep(SETTLE_TIME)
                current = resident_memory(pid) or 0
                samples.append((current - previous) / size)
                previous = current
            load.write("next")
            load.read_event("done", SLACK)
    measurement = Measurement(
        NAME,
        "memory per idle socket",
        "websockets",
        "B",
        samples,
        params={"sockets": sum(steps), "room_size": ROOM_SIZE},
        values={"baseline_rss": float(baseline), "final_rss": float(previous)},
    )
    result.measurements.append(measurement)
    stats = measurement.stats
    progress(
        f"[{NAME}] memory per idle socket: median {stats.median / 1024:.1f} KiB "
        f"(IQR {stats.q1 / 1024:.1f}-{stats.q3 / 1024:.1f} KiB) over "
        f"{sum(steps)} sockets, relay RSS {baseline / 2**20:.1f} -> "
        f"{previous / 2**20:.1f} MiB"
    )


async def _flood_in_process(name: str, config: dict[str, Any]) -> dict[str, Any]:
    settings = Settings(transport=name)
    transport = settings.load_transport()
    summaries: list[dict[str, Any]] = []
    with anyio.fail_after(config["time_limit"]):
        server = create_server_connector(host=LOOPBACK, port=0, settings=settings)
        async with server:
            assert server.url is not None
            url = server.url

            async def request_room() -> dict[str, Any]:
                response = await transport.http_get(url + "/create-room")
                if response.status != 200:
                    raise RuntimeError(
                        f"create-room failed with HTTP {response.status}"
                    )
                ticket: dict[str, Any] = json.loads(response.body)
                return ticket

            def report(message: dict[str, Any]) -> None:
                if message["event"] == "result":
                    summaries.append(message)

            opener = transport_link_opener(transport)
            await flood_room(url, request_room, opener, config, report)
    return summaries[0]


def _flood_per_transport(
    budget: Budget, progress: Progress, result: FamilyResult
) -> None:
    transports, skipped = load_backends(BackendKind.TRANSPORT)
    result.skipped += skipped
    config = _flood_config(budget, [TRANSPORT_SENDERS], budget.transport_duration)
    for name, _transport in transports:
        summary = anyio.run(_flood_in_process, name, config)
        _record_flood(result, progress, summary, IN_PROCESS, name)


def _fanout(budget: Budget, progress: Progress, result: FamilyResult) -> None:
    # Turns of the two relays, so that a change in the machine's load hits both.
    rounds = 3 if budget.mode == "full" else 1
    samples: dict[str, list[float]] = {}
    per_cpu: dict[str, list[float]] = {}
    summaries: dict[str, dict[str, Any]] = {}
    for _ in range(rounds):
        for relay in (relay_fanout.ROUPN, relay_fanout.BASELINE):
            summary = relay_fanout.flood(
                relay, budget.relay_warmup, budget.relay_duration, budget.relay_interval
            )
            if not summary["delivered"]:
                raise RuntimeError(f"the {relay} relay delivered nothing")
            samples.setdefault(relay, []).extend(summary["rates"])
            rate = relay_fanout.per_cpu_second(summary)
            if rate is not None:
                per_cpu.setdefault(relay, []).append(rate)
            summaries[relay] = summary
    for relay, rates in samples.items():
        summary = summaries[relay]
        latency = summary["latency"]
        measurement = Measurement(
            NAME,
            "fan-out",
            relay,
            "frames/s",
            rates,
            params={
                "senders": summary["senders"],
                "receivers": summary["receivers"],
                "message_size": summary["message_size"],
                "window": summary["window"],
                "interval": summary["interval"],
                "rounds": rounds,
                "event_loop": summary["event_loop"],
            },
            values={
                "p50": latency.get("p50", 0.0),
                "p99": latency.get("p99", 0.0),
                "delivered": float(summary["delivered"]),
                # Frames per second of the relay's CPU time, the median of the
                # runs, or 0 where /proc is missing.
                "per_cpu_second": statistics.median(per_cpu.get(relay, [0.0])),
            },
        )
        result.measurements.append(measurement)
        progress(
            f"[{NAME}] fan-out, {relay}: median "
            f"{format_rate(measurement.stats.median, ' frames/s')} (IQR "
            f"{format_rate(measurement.stats.q1)}-"
            f"{format_rate(measurement.stats.q3)})"
        )


def _per_cpu_text(rate: float) -> str:
    return format_rate(rate, " frames") if rate else "-"


def _fanout_table(result: FamilyResult) -> Table:
    table = Table(
        f"relay fan-out: a room of {relay_fanout.ROOM_SIZE}, "
        f"{relay_fanout.SENDERS} senders, {MESSAGE_SIZE}-byte room messages",
        [
            "relay",
            "frames/s median (IQR)",
            "of baseline",
            "per relay CPU s",
            "latency p50",
            "p99",
        ],
    )
    baseline = result.find("fan-out", relay_fanout.BASELINE)
    fanouts = [m for m in result.measurements if m.benchmark == "fan-out"]
    for measurement in fanouts:
        stats = measurement.stats
        ratio = (
            f"{stats.median / baseline.stats.median:.2f}x"
            if baseline is not None and baseline.stats.median > 0
            else "-"
        )
        table.rows.append(
            [
                measurement.backend,
                f"{format_rate(stats.median)} ({format_rate(stats.q1)}"
                f"-{format_rate(stats.q3)})",
                ratio,
                _per_cpu_text(measurement.values["per_cpu_second"]),
                format_seconds(measurement.values["p50"]),
                format_seconds(measurement.values["p99"]),
            ]
        )
    if not fanouts:
        return table
    params = fanouts[0].params
    table.notes.append(
        f"Each relay in its own process, the load generator in another, on "
        f"{params['event_loop']}; up to {params['window']} frames on their way to "
        f"each member; {params['rounds']} run(s) of each relay, in turns."
    )
    table.notes.append(
        "per relay CPU s: frames delivered per second of CPU time (user and "
        "system, from /proc/PID/stat) that the relay process used in the measured "
        "time, which depends less on other programs' load than frames/s."
    )
    return table


# Results.


def _table(result: FamilyResult) -> Table:
    table = Table(
        f"relay: a room of {ROOM_SIZE}, {MESSAGE_SIZE}-byte room messages",
        [
            "setup",
            "transport",
            "senders",
            "deliveries/s median (IQR)",
            "latency p50",
            "p90",
            "p99",
            "delivered",
        ],
    )
    for measurement in result.measurements:
        if measurement.benchmark != "deliveries":
            continue
        stats = measurement.stats
        values = measurement.values
        table.rows.append(
            [
                measurement.params["setup"],
                measurement.backend,
                str(measurement.params["senders"]),
                f"{format_rate(stats.median)} ({format_rate(stats.q1)}"
                f"-{format_rate(stats.q3)})",
                format_seconds(values["p50"]),
                format_seconds(values["p90"]),
                format_seconds(values["p99"]),
                f"{values['delivered']:,.0f}",
            ]
        )
    memory = result.find("memory per idle socket", "websockets")
    if memory is not None:
        stats = memory.stats
        table.notes.append(
            f"memory per idle socket: median {stats.median / 1024:.1f} KiB (IQR "
            f"{stats.q1 / 1024:.1f}-{stats.q3 / 1024:.1f} KiB), from the relay's "
            f"VmRSS over {memory.params['sockets']} idle members in rooms of "
            f"{ROOM_SIZE}"
        )
    table.notes += [
        f"{SEPARATE}: relay and raw websockets load generator in two processes.",
        f"{IN_PROCESS}: relay and members in this process, through the transport.",
        "Each sender sends its next message once its previous one reached every "
        "receiver; deliveries/s counts frames read by all receivers, per interval.",
    ]
    return table


def _recommend(result: FamilyResult) -> None:
    floods = [
        m
        for m in result.measurements
        if m.benchmark == "deliveries" and m.params["setup"] == SEPARATE
    ]
    if not floods:
        return
    best = max(floods, key=lambda m: m.stats.median)

    sentences = [
        "The transport measured between processes. One relay process delivered "
        f"a median {format_rate(best.stats.median, ' frames/s')} to a room of "
        f"{ROOM_SIZE} with {best.params['senders']} senders (p50 "
        f"{format_seconds(best.values['p50'])}, p99 "
        f"{format_seconds(best.values['p99'])}) over WebSockets on 127.0.0.1"
    ]
    memory = result.find("memory per idle socket", "websockets")
    if memory is not None:
        kib = memory.stats.median / 1024
        sentences.append(f"An idle member costs it about {kib:.0f} KiB")

    reason = ". ".join(sentences) + "."
    result.recommendations.append(
        Recommendation("relay transport", "websockets", reason)
    )


def run(budget: Budget, progress: Progress) -> FamilyResult:
    """Flood a room through a relay, measure its memory, and compare transports."""
    started = time.perf_counter()
    result = FamilyResult(NAME)
    _flood_over_websockets(budget, progress, result)
    _idle_memory(budget, progress, result)
    _flood_per_transport(budget, progress, result)
    _fanout(budget, progress, result)
    result.tables.append(_table(result))
    result.tables.append(_fanout_table(result))
    _recommend(result)
    result.seconds = time.perf_counter() - started
    return result
