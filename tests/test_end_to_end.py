"""Whole room sessions: a real relay and real clients over each transport."""

from __future__ import annotations

from base64 import b64decode
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import anyio
import anyio.lowlevel
import pytest

import roupn
from roupn import ConnectionState, Settings
from roupn.errors import ConnectionClosedError, RoomNotFoundError
from roupn.frames import Frame, decode_binary, decode_text, encode_binary, encode_text
from roupn.testing import EventRecorder, admit, disconnected

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("quick_keys")]

TIMEOUT = 20


PROFILES = {
    "roupn-0.1": Settings(),
    "native": Settings.native(),
}


@pytest.fixture(params=["memory", "websockets"])
def transport_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=list(PROFILES))
def settings(request: pytest.FixtureRequest, transport_name: str) -> Settings:
    return replace(PROFILES[request.param], transport=transport_name)


@pytest.fixture
async def relay(settings: Settings) -> AsyncIterator[roupn.ServerConnector]:
    async with roupn.create_server_connector(
        host="127.0.0.1", port=0, settings=settings
    ) as server:
        yield server


async def test_whole_session(relay: roupn.ServerConnector, settings: Settings) -> None:
    relay_events = EventRecorder(relay, TIMEOUT)
    checked: dict[str, list[Any]] = {"alice": [], "bob": []}

    def recorder(who: str) -> Any:
        def check(request: dict[str, Any]) -> bool:
            checked[who].append(request)
            return True

        return check

    async def async_recorder(request: dict[str, Any]) -> bool:
        await anyio.lowlevel.checkpoint()
        checked["bob"].append(request)
        return True

    alice = roupn.create_client_connector(server_url=relay.url, settings=settings)
    bob = roupn.create_client_connector(server_url=relay.url, settings=settings)
    async with alice, bob:
        alice_events = EventRecorder(alice, TIMEOUT)
        bob_events = EventRecorder(bob, TIMEOUT)

        code = await alice.create_room(
            public_data={"name": "Alice"},
            verify_public_data=recorder("alice"),
            private_data={"phone": "alice-private"},
            verify_private_data=recorder("alice"),
        )
        assert alice.state is ConnectionState.CONNECTED
        assert alice.is_creator
        assert relay.get_room_codes() == [code]

        await bob.join_room(
            code.lower(),
            public_data={"name": "Bob"},
            verify_public_data=recorder("bob"),
            private_data={"phone": "bob-private"},
            verify_private_data=async_recorder,
        )
        assert bob.state is ConnectionState.PENDING_VERIFICATION
        assert bob.creator_id == alice.user_id
        assert bob.users == [alice.user_id, bob.user_id]

        (joiner_code,) = await bob_events.wait_for("on_user_verification_code")
        (creator_code,) = await alice_events.wait_for("on_user_verification_code")
        assert joiner_code["code"] == creator_code["code"]
        assert joiner_code["userId"] == alice.user_id
        assert creator_code["userId"] == bob.user_id
        assert bob.get_verification_code(alice.user_id) == joiner_code["code"]
        assert len(joiner_code["code"]) == 6

        assert bob.user_id is not None and alice.user_id is not None
        wrong = "222222" if joiner_code["code"] != "222222" else "333333"
        assert not await alice.verify_user(bob.user_id, wrong)
        assert bob.state is ConnectionState.PENDING_VERIFICATION
        await admit(alice, alice_events, bob, bob_events)
        await alice_events.wait_for(
            "on_user_verified", lambda user: user == bob.user_id
        )
        assert alice.verified_users == {alice.user_id, bob.user_id}
        assert bob.verified_users == {alice.user_id, bob.user_id}

        # Public data was checked on both sides, private data too: it really travels.
        assert [r["data"] for r in checked["alice"]] == [
            {"name": "Bob"},
            {"phone": "bob-private"},
        ]
        assert [r["data"] for r in checked["bob"]] == [
            {"name": "Alice"},
            {"phone": "alice-private"},
        ]
        assert checked["bob"][0]["userId"] == alice.user_id

        await alice.message_room({"text": "from alice", "list": [1, 2], "none": None})
        (message,) = await bob_events.wait_for("on_message")
        assert message.data["text"] == "from alice"
        assert message.data["list"] == [1, 2]
        assert message.data["none"] is None
        assert message.sender == alice.user_id
        assert not message.direct

        await bob.message_room({"text": "from bob ✓ ünïcödé"})
        (message,) = await alice_events.wait_for("on_message")
        assert message.data["text"] == "from bob ✓ ünïcödé"
        assert message.sender == bob.user_id

        await bob.message_user(alice.user_id, {"text": "bob to alice"})
        (message,) = await alice_events.wait_for("on_message", lambda m: m.direct)
        assert message.data["text"] == "bob to alice"
        assert message.sender == bob.user_id

        await alice.message_user(bob.user_id, {"text": "alice to bob"})
        (message,) = await bob_events.wait_for("on_message", lambda m: m.direct)
        assert message.data["text"] == "alice to bob"

        room = relay.get_room(code)
        assert room is not None
        assert room.users == (alice.user_id, bob.user_id)
        assert room.verified_users == (alice.user_id, bob.user_id)

        await alice.close_room()
        await bob_events.wait_for("on_connection", disconnected)
        await alice_events.wait_for("on_connection", disconnected)
        (left,) = await bob_events.wait_for("on_room_leave")
        assert left["roomCode"] == code
        assert bob.state is ConnectionState.DISCONNECTED
        await relay_events.wait_for(
            "on_room_remove", lambda room_code: room_code == code
        )
        assert relay.get_room_count() == 0


async def test_kick_removes_joiner(
    relay: roupn.ServerConnector, settings: Settings
) -> None:
    alice = roupn.create_client_connector(server_url=relay.url, settings=settings)
    bob = roupn.create_client_connector(server_url=relay.url, settings=settings)
    carol = roupn.create_client_connector(server_url=relay.url, settings=settings)
    async with alice, bob, carol:
        alice_events = EventRecorder(alice, TIMEOUT)
        bob_events = EventRecorder(bob, TIMEOUT)
        carol_events = EventRecorder(carol, TIMEOUT)
        code = await alice.create_room()
        await bob.join_room(code)
        await admit(alice, alice_events, bob, bob_events)
        await carol.join_room(code)
        await admit(alice, alice_events, carol, carol_events)

        # Carol joined after Bob was verified: she learns of him when he speaks.
        await bob_events.wait_for("on_user_join", lambda user: user == carol.user_id)
        await bob_events.wait_for(
            "on_user_verified", lambda user: user == carol.user_id
        )

        carol_id = carol.user_id
        assert carol_id is not None
        await alice.kick_user(carol_id)
        await carol_events.wait_for("on_connection", disconnected)
        assert carol.user_id is None
        await bob_events.wait_for("on_user_leave", lambda user: user == carol_id)
        await alice_events.wait_for("on_user_leave", lambda user: user == carol_id)
        room = relay.get_room(code)
        assert room is not None
        assert carol_id not in room.users

        await bob.message_room({"text": "still here"})
        (message,) = await alice_events.wait_for("on_message")
        assert message.data["text"] == "still here"


async def test_relay_forwards_only_ciphertext(
    relay: roupn.ServerConnector, settings: Settings
) -> None:
    secrets = ["room-secret-4f1c", "direct-secret-9a7e", "private-secret-77b2"]
    forwarded: list[str | bytes] = []
    relay.add_listener(
        "on_room_message", lambda code, user, frame: forwarded.append(frame)
    )
    alice = roupn.create_client_connector(server_url=relay.url, settings=settings)
    bob = roupn.create_client_connector(server_url=relay.url, settings=settings)
    async with alice, bob:
        alice_events = EventRecorder(alice, TIMEOUT)
        bob_events = EventRecorder(bob, TIMEOUT)
        code = await alice.create_room(private_data={"secret": secrets[2]})
        await bob.join_room(code, private_data={"secret": secrets[2]})
        await admit(alice, alice_events, bob, bob_events)
        await alice.message_room({"text": secrets[0]})
        assert alice.user_id is not None
        await bob.message_user(alice.user_id, {"text": secrets[1]})
        await bob_events.wait_for("on_message")
        await alice_events.wait_for("on_message")

    assert len(forwarded) >= 6
    for frame in forwarded:
        for layer in _decoded_layers(frame):
            for secret in secrets:
                assert secret.encode() not in layer, f"{secret} readable in a frame"


def _decoded_layers(frame: str | bytes) -> list[bytes]:
    """Return the frame and every segment decoded once and twice from base64."""
    if isinstance(frame, bytes):
        # Binary frames carry raw values: a readable secret would appear as is.
        return [frame]
    layers = [frame.encode()]
    for segment in frame.split("|"):
        _, _, value = segment.partition(":")
        for _ in range(2):
            try:
                decoded = b64decode(value, validate=True)
            except ValueError:
                break
            layers.append(decoded)
            value = decoded.decode("latin-1")
    return layers


async def test_unknown_room_refused(
    relay: roupn.ServerConnector, settings: Settings
) -> None:
    async with roupn.create_client_connector(
        server_url=relay.url, settings=settings
    ) as bob:
        with pytest.raises(RoomNotFoundError, match="room_not_found"):
            await bob.join_room("ZZZZZZ")
        assert bob.state is ConnectionState.DISCONNECTED


async def test_full_room_refused(
    relay: roupn.ServerConnector, settings: Settings
) -> None:
    alice = roupn.create_client_connector(server_url=relay.url, settings=settings)
    bob = roupn.create_client_connector(server_url=relay.url, settings=settings)
    async with alice, bob:
        code = await alice.create_room(limit=1)
        with pytest.raises(roupn.RoomFullError):
            await bob.join_room(code)
        assert relay.get_room(code) is not None


async def test_rejected_public_data_kicks(
    relay: roupn.ServerConnector, settings: Settings
) -> None:
    alice = roupn.create_client_connector(server_url=relay.url, settings=settings)
    bob = roupn.create_client_connector(server_url=relay.url, settings=settings)
    async with alice, bob:
        alice_events = EventRecorder(alice, TIMEOUT)
        bob_events = EventRecorder(bob, TIMEOUT)
        code = await alice.create_room(verify_public_data=lambda request: False)
        await bob.join_room(code, public_data={"name": "Mallory"})
        await bob_events.wait_for("on_connection", disconnected)
        (error,) = await alice_events.wait_for("on_error")
        assert isinstance(error, roupn.VerificationError)
        assert bob_events.of("on_user_verification_code") == []
        assert relay.get_room(code) is not None


async def test_joiner_rejects_creator(
    relay: roupn.ServerConnector, settings: Settings
) -> None:
    alice = roupn.create_client_connector(server_url=relay.url, settings=settings)
    bob = roupn.create_client_connector(server_url=relay.url, settings=settings)
    async with alice, bob:
        alice_events = EventRecorder(alice, TIMEOUT)
        bob_events = EventRecorder(bob, TIMEOUT)
        code = await alice.create_room(public_data={"name": "not who bob expects"})
        await bob.join_room(code, verify_public_data=lambda request: False)
        await bob_events.wait_for("on_connection", disconnected)
        assert bob.user_id is None
        await alice_events.wait_for("on_user_leave")


async def test_rejected_private_data_kicks(
    relay: roupn.ServerConnector, settings: Settings
) -> None:
    alice = roupn.create_client_connector(server_url=relay.url, settings=settings)
    bob = roupn.create_client_connector(server_url=relay.url, settings=settings)
    async with alice, bob:
        alice_events = EventRecorder(alice, TIMEOUT)
        bob_events = EventRecorder(bob, TIMEOUT)
        code = await alice.create_room(
            verify_private_data=lambda request: request["data"] == {"pin": 1234}
        )
        await bob.join_room(code, private_data={"pin": 9999})
        (shown,) = await bob_events.wait_for("on_user_verification_code")
        await alice_events.wait_for("on_user_verification_code")
        assert bob.user_id is not None
        assert await alice.verify_user(bob.user_id, shown["code"])
        await bob_events.wait_for("on_connection", disconnected)
        assert alice.verified_users == {alice.user_id}


async def test_message_before_connected_rejected(
    relay: roupn.ServerConnector, settings: Settings
) -> None:
    alice = roupn.create_client_connector(server_url=relay.url, settings=settings)
    bob = roupn.create_client_connector(server_url=relay.url, settings=settings)
    async with alice, bob:
        with pytest.raises(roupn.StateError, match="not in a room"):
            await bob.message_room({"text": "too early"})
        code = await alice.create_room()
        await bob.join_room(code)
        with pytest.raises(roupn.StateError, match="wait for CONNECTED"):
            await bob.message_room({"text": "too early"})
        with pytest.raises(roupn.StateError, match="only the room's creator"):
            await bob.close_room()


async def test_raw_protocol_refusals(
    relay: roupn.ServerConnector, settings: Settings
) -> None:
    """A client that speaks raw frames: the relay refuses, ignores and keeps serving."""
    transport = settings.load_transport()
    alice = roupn.create_client_connector(server_url=relay.url, settings=settings)
    async with alice:
        alice_events = EventRecorder(alice, TIMEOUT)
        code = await alice.create_room()
        ticket_secret = "00000000-0000-4000-8000-000000000000"
        join = f"{relay.url}/join-room?code={code}"

        for url, reason in [
            (f"{relay.url}/join-room", "missing_room_code"),
            (f"{relay.url}/join-room?code=AAAAAA", "room_not_found"),
            (f"{join}&creator={ticket_secret}", "invalid_creator_secret"),
        ]:
            async with transport.connect(url) as raw:
                with (
                    anyio.fail_after(TIMEOUT),
                    pytest.raises(ConnectionClosedError) as info,
                ):
                    await raw.receive()
                assert info.value.code == 1008
                assert info.value.reason == reason

        async with transport.connect(join) as raw:
            with anyio.fail_after(TIMEOUT):
                joined = _segments(settings, await raw.receive())
            assert joined["S"]["type"] == "_RJ"
            mallory = joined["S"]["userId"]
            await alice_events.wait_for("on_user_join", lambda user: user == mallory)

            # Control messages from a non-creator are ignored.
            await raw.send(_control(settings, {"type": "_RC"}))
            await raw.send(_control(settings, {"type": "_UV", "userId": mallory}))
            # Room frames from an unverified user are not forwarded.
            await raw.send(_encode(settings, {"I": b"abc", "E": b"abc"}))
            await anyio.sleep(0.2)
            room = relay.get_room(code)
            assert room is not None
            assert mallory in room.users
            assert mallory not in room.verified_users
            assert alice_events.of("on_message") == []

            # A malformed frame closes only the sender.
            duplicate = "U:!!!|U:!!!"
            if settings.load_serializer().binary:
                duplicate = encode_binary({"U": b"a"}) * 2  # type: ignore[assignment]
            await raw.send(duplicate)
            with (
                anyio.fail_after(TIMEOUT),
                pytest.raises(ConnectionClosedError) as info,
            ):
                while True:
                    await raw.receive()
            assert info.value.code == 1008
            assert info.value.reason == "invalid_frame"

        await alice_events.wait_for("on_user_leave", lambda user: user == mallory)
        assert alice.state is ConnectionState.CONNECTED
        assert relay.get_room(code) is not None


def _encode(settings: Settings, frame: Frame) -> str | bytes:
    if settings.load_serializer().binary:
        return encode_binary(frame)
    return encode_text(frame)


def _control(settings: Settings, message: dict[str, Any]) -> str | bytes:
    return _encode(settings, {"S": settings.load_serializer().dumps(message)})


def _segments(settings: Settings, data: str | bytes) -> dict[str, Any]:
    frame = decode_binary(data) if isinstance(data, bytes) else decode_text(data)
    out: dict[str, Any] = dict(frame)
    if "S" in frame:
        out["S"] = settings.load_serializer().loads(frame["S"])
    return out


async def test_creator_secret_reuse_refused(
    relay: roupn.ServerConnector, settings: Settings
) -> None:
    transport = settings.load_transport()
    ticket = relay.create_room()
    url = (
        f"{relay.url}/join-room?code={ticket.room_code}&creator={ticket.creator_secret}"
    )
    async with transport.connect(url) as creator:
        with anyio.fail_after(TIMEOUT):
            joined = _segments(settings, await creator.receive())
        assert joined["S"]["userId"] == ticket.user_id
        async with transport.connect(url) as replay:
            with (
                anyio.fail_after(TIMEOUT),
                pytest.raises(ConnectionClosedError) as info,
            ):
                await replay.receive()
        assert info.value.code == 1008
        assert info.value.reason == "creator_already_joined"
        room = relay.get_room(ticket.room_code)
        assert room is not None
        assert room.users == (ticket.user_id,)


async def test_create_room_http_errors(
    relay: roupn.ServerConnector, settings: Settings
) -> None:
    transport = settings.load_transport()
    for path, status in [
        ("/create-room?limit=zero", 400),
        ("/create-room?limit=0", 400),
        ("/nowhere", 404),
    ]:
        response = await transport.http_get(relay.url + path)
        assert response.status == status, path
        assert b"error" in response.body
    assert relay.get_room_count() == 0
    response = await transport.http_get(relay.url + "/create-room?limit=3")
    assert response.status == 200
    ticket = settings.load_serializer().loads(response.body)
    room = relay.get_room(ticket["roomCode"])
    assert room is not None
    assert room.max_users == 3
