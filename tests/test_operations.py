"""The health and metrics endpoints of a relay, over real sockets on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import os
from base64 import b64decode, b64encode
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

import roupn
from roupn import Settings
from roupn.errors import ConnectionClosedError, MissingDependencyError, RoupnError
from roupn.interfaces import Connection
from roupn.operations import listen_function

pytestmark = pytest.mark.anyio

TIMEOUT = 10
SETTINGS = Settings(transport="websockets")

# Loggers of the relay side. The HTTP client of these tests logs each request too.
RELAY_LOGGERS = {"roupn", "roupn_websockets", "websockets"}

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@asynccontextmanager
async def running_relay(**options: Any) -> AsyncIterator[roupn.ServerConnector]:
    async with roupn.create_server_connector(
        host="127.0.0.1", port=0, settings=SETTINGS, **options
    ) as server:
        yield server


async def get(
    server: roupn.ServerConnector, path: str, method: str = "GET", **headers: str
) -> httpx.Response:
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        return await client.request(method, f"{server.url}{path}", headers=headers)


async def scrape(server: roupn.ServerConnector) -> Samples:
    response = await get(server, "/metrics")
    assert response.status_code == 200
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def decode_control(frame: str | bytes) -> dict[str, Any]:
    """Decode the control message of a relay frame, with or without a T segment."""
    assert isinstance(frame, str)
    segment = frame.rpartition("|")[2]
    key, _, encoded = segment.partition(":")
    assert key == "S"
    message: dict[str, Any] = json.loads(b64decode(encoded))
    return message


def direct_frame(receiver: str, payload: str) -> str:
    encoded = b64encode(receiver.encode()).decode()
    return f"U:{encoded}|E:{b64encode(payload.encode()).decode()}"


class Member:
    """A raw room socket that records every frame it receives."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.received: list[str | bytes] = []

    async def receive(self) -> str | bytes:
        with anyio.fail_after(TIMEOUT):
            frame = await self.connection.receive()
        self.received.append(frame)
        return frame


async def expect_rejection(url: str, reason: str) -> None:
    transport = SETTINGS.load_transport()
    async with transport.connect(url) as connection:
        with pytest.raises(ConnectionClosedError) as info, anyio.fail_after(TIMEOUT):
            await connection.receive()
    assert info.value.reason == reason


# Health endpoint.


async def test_healthz_serving_then_503() -> None:
    async with running_relay() as server:
        response = await get(server, "/healthz")
        assert response.status_code == 200
        assert response.json() == {"status": "serving", "pid": os.getpid()}
        assert len(response.content) < 100

        head = await get(server, "/healthz", method="HEAD")
        assert head.status_code == 200
        assert head.content == b""

        server.begin_shutdown()
        response = await get(server, "/healthz")
        assert response.status_code == 503
        assert response.json()["status"] == "shutting_down"


async def test_healthz_rejects_post() -> None:
    async with running_relay() as server:
        response = await get(server, "/healthz", method="POST")
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD"


async def test_healthz_skips_rate_limits_and_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with running_relay(room_creations_per_minute=1) as server:
        assert (await get(server, "/create-room")).status_code == 200
        assert (await get(server, "/create-room")).status_code == 429
        caplog.clear()
        caplog.set_level(logging.INFO)
        for _ in range(20):
            assert (await get(server, "/healthz")).status_code == 200
        relay_lines = [
            record.getMessage()
            for record in caplog.records
            if record.name.split(".")[0] in RELAY_LOGGERS
            and record.levelno >= logging.INFO
        ]
        assert relay_lines == []
        samples = await scrape(server)
    # Only the second create-room request counts as a rejection.
    assert value(samples, "roupn_rejections_total", reason="rate_limited") == 1


# Metrics endpoint.


async def test_metrics_follow_known_traffic() -> None:
    transport = SETTINGS.load_transport()
    async with running_relay() as server:
        before = await scrape(server)
        assert value(before, "roupn_rooms") == 0
        assert value(before, "roupn_open_connections") == 0

        ticket = (await get(server, "/create-room")).json()
        code = ticket["roomCode"]
        creator_url = (
            f"{server.url}/join-room?code={code}&creator={ticket['creatorSecret']}"
        )
        sent: list[str] = []
        async with transport.connect(creator_url) as creator_socket:
            creator = Member(creator_socket)
            assert decode_control(await creator.receive())["type"] == "_RJ"
            async with transport.connect(
                f"{server.url}/join-room?code={code}"
            ) as joiner_socket:
                joiner = Member(joiner_socket)
                joined = decode_control(await joiner.receive())
                joiner_id = joined["userId"]
                assert decode_control(await creator.receive())["type"] == "_UJ"

                for index in range(3):
                    frame = direct_frame(joiner_id, f"hello {index}")
                    await creator_socket.send(frame)
                    sent.append(frame)
                    await joiner.receive()
                reply = direct_frame(ticket["userId"], "hi")
                await joiner_socket.send(reply)
                sent.append(reply)
                await creator.receive()

                await expect_rejection(
                    f"{server.url}/join-room?code=NOROOM", "room_not_found"
                )
                during = await scrape(server)
                body = (await get(server, "/metrics")).text
                health = (await get(server, "/healthz")).text

    for secret in (code, ticket["creatorSecret"], ticket["userId"], joiner_id):
        assert secret not in body
        assert secret not in health

    delta = {key: during[key] - before.get(key, 0.0) for key in during}
    assert value(delta, "roupn_rooms_created_total") == 1
    assert value(delta, "roupn_joins_total") == 2
    assert value(during, "roupn_rooms") == 1
    # The joiner, the creator, and the socket rejected just before the scrape may
    # still be counted while it closes.
    assert value(during, "roupn_open_connections") in (2, 3)
    assert value(delta, "roupn_frames_received_total") == len(sent)
    assert value(delta, "roupn_received_bytes_total") == sum(map(len, sent))
    received = creator.received + joiner.received
    assert value(delta, "roupn_frames_relayed_total") == len(received)
    assert value(delta, "roupn_relayed_bytes_total") == sum(map(len, received))
    assert value(delta, "roupn_rejections_total", reason="room_not_found") == 1
    assert value(delta, "roupn_rejections_total", reason="room_full") == 0
    assert value(delta, "roupn_slow_consumers_dropped_total") == 0
    assert value(during, "roupn_room_users_bucket", le="1.0") == 0
    assert value(during, "roupn_room_users_bucket", le="2.0") == 1
    assert value(during, "roupn_room_users_bucket", le="+Inf") == 1
    assert value(during, "roupn_room_users_gsum") == 2


async def test_metrics_count_rejection_categories() -> None:
    origin = "https://app.example"
    transport = SETTINGS.load_transport()
    async with running_relay(allowed_origins=[origin]) as server:
        bad_limit = await get(server, "/create-room?limit=zero")
        assert bad_limit.status_code == 400
        bad_origin = await get(server, "/create-room", Origin="https://evil.example")
        assert bad_origin.status_code == 403

        ticket = (await get(server, "/create-room?limit=1")).json()
        code = ticket["roomCode"]
        creator_url = (
            f"{server.url}/join-room?code={code}&creator={ticket['creatorSecret']}"
        )
        async with transport.connect(creator_url) as creator_socket:
            await Member(creator_socket).receive()
            await expect_rejection(f"{server.url}/join-room?code={code}", "room_full")
            await expect_rejection(
                f"{server.url}/join-room?code={code}&creator=wrong",
                "invalid_creator_secret",
            )
            too_big = "E:" + "A" * (server.state.max_frame_size + 1)
            await creator_socket.send(too_big)
            with pytest.raises(ConnectionClosedError) as info:
                with anyio.fail_after(TIMEOUT):
                    await creator_socket.receive()
            assert info.value.reason == "frame_too_big"
        samples = await scrape(server)

    for reason, count in [
        ("invalid_request", 2),
        ("origin", 1),
        ("room_full", 1),
        ("too_big", 1),
        ("rate_limited", 0),
        ("other", 0),
    ]:
        assert value(samples, "roupn_rejections_total", reason=reason) == count, reason


async def test_metrics_per_relay_registry() -> None:
    async with running_relay() as first, running_relay() as second:
        for _ in range(3):
            assert (await get(first, "/create-room")).status_code == 200
        first_samples = await scrape(first)
        second_samples = await scrape(second)
    assert value(first_samples, "roupn_rooms_created_total") == 3
    assert value(second_samples, "roupn_rooms_created_total") == 0


async def test_metrics_backplane_latency_hook() -> None:
    async with running_relay() as server:
        server.metrics.observe_backplane_latency(0.003)
        server.metrics.observe_backplane_latency(0.2)
        samples = await scrape(server)
    assert value(samples, "roupn_backplane_latency_seconds_count") == 2
    assert value(samples, "roupn_backplane_latency_seconds_bucket", le="0.005") == 1
    assert value(samples, "roupn_backplane_latency_seconds_bucket", le="0.25") == 2


async def test_metrics_openmetrics_format() -> None:
    async with running_relay() as server:
        response = await get(
            server, "/metrics", Accept="application/openmetrics-text; version=1.0.0"
        )
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")
    assert "roupn_rejections_total{reason=" in response.text


async def test_metrics_off_returns_404() -> None:
    async with running_relay(metrics=False) as server:
        response = await get(server, "/metrics")
        assert response.status_code == 404
        assert not server.metrics.enabled
        assert (await get(server, "/healthz")).status_code == 200


async def test_metrics_missing_package_logs_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr("roupn.metrics.metrics_available", lambda: False)
    caplog.set_level(logging.WARNING, logger="roupn.metrics")
    async with running_relay() as server:
        for _ in range(3):
            assert (await get(server, "/metrics")).status_code == 404
    warnings = [r for r in caplog.records if r.name == "roupn.metrics"]
    assert len(warnings) == 1
    assert "pip install 'roupn[metrics]'" in warnings[0].getMessage()


def test_metrics_required_but_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("roupn.metrics.metrics_available", lambda: False)
    with pytest.raises(MissingDependencyError, match=r"roupn\[metrics\]"):
        roupn.create_server_connector(settings=SETTINGS, metrics=True)


async def test_metrics_port_serves_operations_only() -> None:
    transport = SETTINGS.load_transport()
    async with running_relay(metrics_port=0) as server:
        assert server.metrics_url is not None
        assert server.metrics_url != server.url
        assert (await get(server, "/metrics")).status_code == 404
        assert (await get(server, "/healthz")).status_code == 200
        assert (await get(server, "/create-room")).status_code == 200
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            metrics = await client.get(f"{server.metrics_url}/metrics")
            health = await client.get(f"{server.metrics_url}/healthz")
            create = await client.get(f"{server.metrics_url}/create-room")
        with pytest.raises(ConnectionClosedError, match="404"):
            async with transport.connect(f"{server.metrics_url}/join-room?code=X"):
                pass
    assert metrics.status_code == 200
    assert "roupn_rooms_created_total 1.0" in metrics.text
    assert health.status_code == 200
    assert create.status_code == 404


async def test_metrics_count_slow_consumer() -> None:
    transport = SETTINGS.load_transport()
    async with running_relay(max_send_buffer=1) as server:
        ticket = (await get(server, "/create-room")).json()
        code = ticket["roomCode"]
        creator_url = (
            f"{server.url}/join-room?code={code}&creator={ticket['creatorSecret']}"
        )
        async with transport.connect(creator_url) as creator_socket:
            await Member(creator_socket).receive()
            # The first frame fills the buffer of one byte, so the second one
            # overflows it before the writer runs, and the relay closes the room.
            for _ in range(3):
                if server.get_room(code) is None:
                    break
                server.message_user(code, ticket["userId"], {"type": "note"})
            assert server.get_room(code) is None
            # The close frame may not arrive, because the relay skips the frames
            # queued before it and closes at once.
            with pytest.raises(ConnectionClosedError), anyio.fail_after(TIMEOUT):
                while True:
                    await creator_socket.receive()
        samples = await scrape(server)
    assert value(samples, "roupn_slow_consumers_dropped_total") == 1
    assert sum(v for (name, _), v in samples.items() if "rejections" in name) == 0


def test_reuse_port_needs_transport_support() -> None:
    transport = Settings(transport="memory").load_transport()
    with pytest.raises(RoupnError, match="cannot share a port"):
        listen_function(transport, reuse_port=True)
    assert listen_function(transport, reuse_port=False) == transport.serve
