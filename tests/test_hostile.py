"""Hostile members and relays: every attack is rejected and reported, none crashes."""

from __future__ import annotations

import json
from base64 import b64encode
from typing import Any

import anyio
import pytest
from test_relay_state import control, make_relay, room_with_members, sends
from test_session import Room, room_with_joiner

import roupn
from roupn.errors import FrameError, ProtocolError
from roupn.frames import Frame
from roupn.interfaces import Connection, HttpRequest, HttpResponse
from roupn.relay import Close
from roupn.session import SendFrame
from roupn.testing import EventRecorder


def errors_of(room: Room, user_id: str) -> list[BaseException]:
    return [args[0] for args in room.events(user_id, "on_error")]


@pytest.mark.usefixtures("quick_keys")
def test_second_handshake_for_user_rejected() -> None:
    room, creator, joiner = room_with_joiner()
    room.verify(creator, joiner)
    keys_before = room.sessions[creator].peers[joiner].keys
    impostor = room.suite.generate_identity()
    hello = {
        "type": "_X0",
        "publicData": None,
        **room.suite.public_fields(impostor),
        "signature": room.suite.sign_exchange(impostor),
        "sender": joiner,
        "senderTime": 1,
    }
    frame = {"D": room.serializer.dumps(hello), "U": creator.encode()}
    room.run([SendFrame(frame)], joiner)
    room.deliver()
    assert room.sessions[creator].peers[joiner].keys is keys_before
    assert isinstance(errors_of(room, creator)[-1], ProtocolError)


@pytest.mark.usefixtures("quick_keys")
def test_control_inside_direct_frame_ignored() -> None:
    room, creator, joiner = room_with_joiner()
    second = room.add()
    room.deliver()
    room.verify(creator, joiner)
    forged = room.serializer.dumps(
        {"type": "_UV", "userId": second, "sender": creator, "senderTime": 1}
    )
    room.run([SendFrame({"U": joiner.encode(), "S": forged})], second)
    room.deliver()
    assert second not in room.sessions[joiner].verified_users
    assert isinstance(errors_of(room, joiner)[-1], FrameError)


@pytest.mark.usefixtures("quick_keys")
def test_direct_message_from_unverified_dropped() -> None:
    room, creator, joiner = room_with_joiner()
    session = room.sessions[joiner]
    note = session._direct(session.peers[creator], {"text": "before verification"})
    room.run([note], joiner)
    room.deliver()
    assert room.events(creator, "on_message") == []
    assert isinstance(errors_of(room, creator)[-1], ProtocolError)


@pytest.mark.usefixtures("quick_keys")
@pytest.mark.parametrize(
    "frame",
    [
        {"D": b"[" * 5000, "U": b"creator"},
        {"S": b"[" * 5000},
        {"T": "²".encode(), "S": b"{}"},
        {"T": b"9" * 40, "S": b"{}"},
        {"S": b'{"type": 5}'},
        {"S": b'{"type": "_UJ", "userId": ["x"]}'},
        {"U": b"x"},
        {"X": b"unknown"},
    ],
)
def test_malformed_frames_reported(frame: Frame) -> None:
    room, creator, _ = room_with_joiner()
    actions = room.sessions[creator].receive(frame)
    assert [type(a).__name__ for a in actions] == ["Notice"]
    assert actions[0].event == "on_error"  # type: ignore[union-attr]


@pytest.mark.usefixtures("quick_keys")
@pytest.mark.parametrize("sender_time", [float("inf"), 10**400, -5, "soon", True])
def test_bad_sender_time_tolerated(sender_time: Any) -> None:
    room, creator, joiner = room_with_joiner()
    room.verify(creator, joiner)
    session = room.sessions[creator]
    encoded = "1e999" if isinstance(sender_time, float) else json.dumps(sender_time)
    plaintext = f'{{"text":"t","sender":"{creator}","senderTime":{encoded}}}'
    assert session.room_key is not None
    fields = room.suite.seal_room(session.room_key, plaintext.encode())
    room.run([SendFrame(fields)], creator)
    room.deliver()
    (received,) = room.events(joiner, "on_message")[0]
    assert received.data["text"] == "t"
    assert received.delay == 0


# The relay.


def test_relay_rejects_client_time_segment() -> None:
    relay, _ = make_relay()
    _, creator, (joiner,) = room_with_members(relay, 1)
    time_segment = "T:" + b64encode(b"1").decode()
    actions = relay.receive(joiner, f"{time_segment}|I:YQ==|E:YQ==")
    assert Close(joiner, 1008, "invalid_frame") in actions
    assert all("T:MQ==" not in frame for frame in sends(actions)[creator])


def test_relay_rejects_oversized_frame() -> None:
    relay, _ = make_relay(max_frame_size=100)
    _, creator, (joiner,) = room_with_members(relay, 1)
    actions = relay.receive(joiner, "I:YQ==|E:" + "Q" * 200)
    assert Close(joiner, 1009, "frame_too_big") in actions
    assert all("QQQQ" not in frame for frame in sends(actions)[creator])


def test_relay_survives_nested_control() -> None:
    relay, _ = make_relay()
    code, creator, (joiner,) = room_with_members(relay, 1)
    nested = "S:" + b64encode(b"[" * 5000).decode()
    assert relay.receive(creator, nested)[1:] == []
    room = relay.get_room(code)
    assert room is not None
    assert list(room.members) == [creator, joiner]
    assert relay.receive(creator, control({"type": "_RC"}))


# A relay that never admits the socket.


class SilentRelay:
    async def handle_http(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse(404)

    def check_upgrade(self, request: HttpRequest) -> HttpResponse | None:
        return None

    async def handle_socket(self, request: HttpRequest, connection: Connection) -> None:
        await anyio.sleep_forever()


@pytest.mark.anyio
@pytest.mark.usefixtures("quick_keys")
async def test_join_times_out_cleanly() -> None:
    settings = roupn.Settings(transport="memory")
    transport = settings.load_transport()
    async with anyio.create_task_group() as group:
        url = await group.start(transport.serve, SilentRelay(), "silent", 0)
        client = roupn.create_client_connector(
            server_url=url, settings=settings, join_timeout=0.3
        )
        events = EventRecorder(client, 5)
        async with client:
            with pytest.raises(roupn.JoinTimeoutError, match=r"within 0\.3 s"):
                await client.join_room("ABCDEF")
            await events.wait_for(
                "on_connection",
                lambda state: state is roupn.ConnectionState.DISCONNECTED,
            )
            with pytest.raises(roupn.JoinTimeoutError):
                await client.join_room("ABCDEF")
        group.cancel_scope.cancel()
