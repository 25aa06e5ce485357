"""The roupn-cbor distribution: a third-party plugin found through its entry point."""

from __future__ import annotations

import pytest

import roupn
from roupn import BackendKind, ConnectionState, Settings
from roupn.testing import EventRecorder

pytest.importorskip("roupn_cbor", reason="pip install ./contrib/roupn-cbor to test it")


def test_cbor_listed_with_its_distribution() -> None:
    backend = roupn.get_registry().get(BackendKind.SERIALIZER, "cbor")
    assert backend.distribution == "roupn-cbor"
    assert backend.usable


def test_cbor_round_trip_and_rejections() -> None:
    serializer = Settings(serializer="cbor").load_serializer()
    message = {"text": "ünïcödé", "n": [1, 2.5, None, True], "nested": {"a": {}}}
    assert serializer.loads(serializer.dumps(message)) == message
    for bad in (b"\xff\xff", b"\x42ab", b"\xa1\x01\x02"):
        with pytest.raises(roupn.MessageError):
            serializer.loads(bad)


@pytest.mark.anyio
async def test_cbor_room_end_to_end() -> None:
    settings = Settings(transport="memory", cipher_suite="nacl", serializer="cbor")
    async with roupn.create_server_connector(
        host="cbor", port=0, settings=settings
    ) as relay:
        alice = roupn.create_client_connector(server_url=relay.url, settings=settings)
        bob = roupn.create_client_connector(server_url=relay.url, settings=settings)
        async with alice, bob:
            alice_events = EventRecorder(alice, 10)
            bob_events = EventRecorder(bob, 10)
            code = await alice.create_room()
            await bob.join_room(code)
            (shown,) = await bob_events.wait_for("on_user_verification_code")
            await alice_events.wait_for("on_user_verification_code")
            assert bob.user_id is not None
            assert await alice.verify_user(bob.user_id, shown["code"])
            await bob_events.wait_for(
                "on_connection", lambda state: state is ConnectionState.CONNECTED
            )
            await alice.message_room({"text": "over cbor"})
            (message,) = await bob_events.wait_for("on_message")
            assert message.data["text"] == "over cbor"
