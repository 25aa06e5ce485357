"""Rate limits, connection counts and the relay state's room limits, without sockets."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from test_relay_state import closes, control, joined, make_relay

from roupn import Settings
from roupn.cli import main
from roupn.errors import RoomLimitError
from roupn.limits import ConnectionLimiter, RateLimiter, client_host
from roupn.relay import JoinRefused
from roupn.server import ServerConnector


class FakeClock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


# Rate limiter.


def test_rate_limiter_allows_burst_then_refuses() -> None:
    limiter = RateLimiter(3, clock=FakeClock())
    assert [limiter.allow("a") for _ in range(5)] == [True, True, True, False, False]


def test_rate_limiter_refills_over_time() -> None:
    clock = FakeClock()
    limiter = RateLimiter(60, burst=2, clock=clock)
    assert limiter.allow("a")
    assert limiter.allow("a")
    assert not limiter.allow("a")
    clock.now += 0.5
    assert not limiter.allow("a")
    clock.now += 0.5
    assert limiter.allow("a")
    assert not limiter.allow("a")
    clock.now += 3600
    assert [limiter.allow("a") for _ in range(3)] == [True, True, False]


def test_rate_limiter_keys_independent() -> None:
    limiter = RateLimiter(1, clock=FakeClock())
    assert limiter.allow("a")
    assert not limiter.allow("a")
    assert limiter.allow("b")


def test_rate_limiter_clock_going_back() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1, clock=clock)
    assert limiter.allow("a")
    clock.now -= 100
    assert not limiter.allow("a")


def test_rate_limiter_memory_bounded() -> None:
    limiter = RateLimiter(1, clock=FakeClock(), max_keys=3)
    for key in ["a", "b", "c", "d"]:
        assert limiter.allow(key)
    assert len(limiter) == 3
    # "a" was the least recently used key, so it was dropped and starts afresh.
    assert limiter.allow("a")
    assert not limiter.allow("d")


@pytest.mark.parametrize(
    "options",
    [{"rate": 0}, {"rate": -1}, {"rate": 1, "burst": 0}, {"rate": 1, "max_keys": 0}],
)
def test_rate_limiter_invalid_options(options: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        RateLimiter(**options)  # type: ignore[arg-type]


# Connection counts.


def test_connections_capped_per_key() -> None:
    limiter = ConnectionLimiter(max_total=None, max_per_key=2)
    assert limiter.open("a") is None
    assert limiter.open("a") is None
    assert limiter.open("a") == "too_many_connections_from_address"
    assert limiter.open("b") is None
    assert limiter.count("a") == 2
    limiter.release("a")
    assert limiter.open("a") is None


def test_connections_capped_in_total() -> None:
    limiter = ConnectionLimiter(max_total=2, max_per_key=None)
    assert limiter.open("a") is None
    assert limiter.open("b") is None
    assert limiter.open("c") == "too_many_connections"
    limiter.release("b")
    assert limiter.open("c") is None
    assert limiter.total == 2


def test_connection_release_without_open() -> None:
    limiter = ConnectionLimiter(max_total=1, max_per_key=1)
    limiter.release("a")
    assert limiter.total == 0
    assert limiter.open("a") is None
    limiter.release("a")
    limiter.release("a")
    assert limiter.total == 0
    assert limiter.count("a") == 0


def test_connection_limiter_invalid_options() -> None:
    with pytest.raises(ValueError, match="max_total"):
        ConnectionLimiter(max_total=0, max_per_key=None)
    with pytest.raises(ValueError, match="max_per_key"):
        ConnectionLimiter(max_total=None, max_per_key=-1)


@pytest.mark.parametrize(
    ("address", "host"),
    [
        ("127.0.0.1:5000", "127.0.0.1"),
        ("[::1]:5000", "::1"),
        ("memory-client-3", "memory-client-3"),
        ("host:", "host:"),
        ("", ""),
    ],
)
def test_client_host(address: str, host: str) -> None:
    assert client_host(address) == host


# Room limits of the relay state.


def test_max_rooms_refused() -> None:
    relay, _ = make_relay(max_rooms=2)
    first = relay.create_room()
    relay.create_room()
    with pytest.raises(RoomLimitError, match="maximum of 2 rooms"):
        relay.create_room()
    relay.remove_room(first.room_code)
    assert relay.create_room().room_code in relay.rooms


def test_pending_joiners_capped() -> None:
    relay, _ = make_relay(max_pending_per_room=2)
    ticket = relay.create_room()
    creator, _ = joined(relay, ticket.room_code, ticket.creator_secret)
    first, _ = joined(relay, ticket.room_code)
    joined(relay, ticket.room_code)
    assert relay.join(ticket.room_code) == JoinRefused(1013, "too_many_pending")

    # A verified joiner no longer counts as pending.
    relay.receive(creator, control({"type": "_UV", "userId": first}))
    assert not isinstance(relay.join(ticket.room_code), JoinRefused)


def test_unverified_joiner_expires() -> None:
    relay, clock = make_relay(verification_timeout=30)
    ticket = relay.create_room()
    creator, _ = joined(relay, ticket.room_code, ticket.creator_secret)
    verified, _ = joined(relay, ticket.room_code)
    relay.receive(creator, control({"type": "_UV", "userId": verified}))
    clock.now += 10
    waiting, _ = joined(relay, ticket.room_code)
    clock.now += 25
    assert relay.expire() == []

    clock.now += 5
    actions = relay.expire()
    assert closes(actions) == {waiting: (1008, "verification_timeout")}
    room = relay.get_room(ticket.room_code)
    assert room is not None
    assert list(room.members) == [creator, verified]
    assert room.pending_since == {}


def test_verification_timeout_off() -> None:
    relay, clock = make_relay(verification_timeout=None)
    ticket = relay.create_room()
    joined(relay, ticket.room_code, ticket.creator_secret)
    joined(relay, ticket.room_code)
    clock.now += 10**6
    assert relay.expire_unverified() == []


@pytest.mark.parametrize(
    "options",
    [
        {"max_rooms": 0},
        {"max_pending_per_room": 0},
        {"verification_timeout": 0},
        {"verification_timeout": float("nan")},
    ],
)
def test_relay_invalid_limits(options: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        make_relay(**options)


# The connector's rejection log and the serve command's options.


def test_rejection_log_throttled(caplog: pytest.LogCaptureFixture) -> None:
    server = ServerConnector(settings=Settings(transport="memory"))
    with caplog.at_level(logging.DEBUG, logger="roupn.server"):
        for _ in range(12):
            server._log_rejection("10.0.0.1:4000", "join from %s: x", "10.0.0.1:4000")
        server._log_rejection("10.0.0.2:4000", "join from %s: x", "10.0.0.2:4000")
    levels = [record.levelno for record in caplog.records]
    assert levels == [logging.WARNING] * 10 + [logging.DEBUG] * 2 + [logging.WARNING]
    assert caplog.records[0].getMessage() == "rejected join from 10.0.0.1:4000: x"


def test_serve_passes_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    options: dict[str, Any] = {}

    def fake_connector(**connector_options: Any) -> None:
        options.update(connector_options)
        raise OSError("not started in this test")

    monkeypatch.setattr("roupn.server.create_server_connector", fake_connector)
    argv = [
        "serve",
        "--max-rooms=5",
        "--max-connections=0",
        "--join-attempts-per-minute=2.5",
        "--idle-timeout=0",
        "--allowed-origin=https://a.example",
        "--allowed-origin=https://b.example",
    ]
    assert main(argv) == 1
    assert options["max_rooms"] == 5
    assert options["max_connections"] is None
    assert options["max_connections_per_address"] == 100
    assert options["join_attempts_per_minute"] == 2.5
    assert options["room_creations_per_minute"] == 30
    assert options["idle_timeout"] is None
    assert options["verification_timeout"] == 300
    assert options["max_pending_per_room"] == 10
    assert options["allowed_origins"] == ["https://a.example", "https://b.example"]


def test_serve_rejects_negative_limits(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ["serve", "--max-rooms", "-1"],
        ["serve", "--idle-timeout", "-5"],
        ["serve", "--verification-timeout", "nan"],
        ["serve", "--join-attempts-per-minute", "inf"],
    ):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
    assert "use 0 or more" in capsys.readouterr().err
