"""Choosing a backplane: registration, options, and the roupn serve flags."""

from __future__ import annotations

import pytest

import roupn
from roupn.backplane import BackplaneOptions
from roupn.cli import _build_parser, backplane_options, main
from roupn.errors import RoomError, UnknownBackendError
from roupn.plugins import BackendKind


def test_backplanes_registered() -> None:
    registry = roupn.get_registry()
    assert registry.names(BackendKind.BACKPLANE) == ["memory", "redis"]
    redis = registry.get(BackendKind.BACKPLANE, "redis")
    assert redis.extra == "redis"
    assert redis.requires == ("redis",)


def test_plugins_command_lists_backplanes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = {line.split()[1] for line in lines if line.startswith("backplane")}
    assert names == {"memory", "redis"}


def test_unknown_backplane_lists_names() -> None:
    with pytest.raises(UnknownBackendError, match="memory, redis"):
        roupn.create_server_connector(backplane="carrier-pigeon")


def test_options_round_trip_through_serve() -> None:
    chosen = BackplaneOptions(
        name="redis",
        url="redis://127.0.0.1:6400/2",
        key_prefix="cluster-a",
        heartbeat_interval=0.5,
        node_timeout=3.0,
    )
    args = _build_parser().parse_args(["serve", *chosen.to_arguments()])
    assert backplane_options(args) == chosen
    memory = _build_parser().parse_args(["serve", *BackplaneOptions().to_arguments()])
    assert backplane_options(memory).name == "memory"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"heartbeat_interval": 0}, "heartbeat_interval must be more than 0"),
        ({"node_timeout": 1.0, "heartbeat_interval": 1.0}, "must be longer than"),
        ({"key_prefix": "two words"}, "invalid key_prefix"),
    ],
)
def test_invalid_options_rejected(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BackplaneOptions(**options)  # type: ignore[arg-type]


def test_serve_rejects_short_node_timeout(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["serve", "--heartbeat-interval", "2", "--node-timeout", "1"])
    assert info.value.code == 2
    assert "must be longer than heartbeat_interval" in capsys.readouterr().err


def test_serve_redis_on_trio_explains(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(
        [
            "serve",
            "--port",
            "0",
            "--backplane",
            "redis",
            "--async-backend",
            "trio",
        ]
    )
    assert status == 1
    error = capsys.readouterr().err
    assert "runs only on asyncio" in error
    assert "--async-backend asyncio" in error


def test_redis_connector_creates_rooms_async_only() -> None:
    server = roupn.create_server_connector(backplane="redis")
    with pytest.raises(RoomError, match="create_room_async"):
        server.create_room()
