"""The client synchronizer: a shared JSON document that every room member sees the same.

Changes to :attr:`ClientSynchronizer.public_state` are sent as ``_SU`` state updates
by :meth:`ClientSynchronizer.send_update`. Every member orders updates by a key taken
from the message (sender time, sender id, identifier) and rolls back and re-applies
when an update arrives late, so all documents converge without waiting for the
creator's ``_SS`` full sync, which still repairs anything that slipped through.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from types import MappingProxyType, TracebackType
from typing import Any, Self

import anyio

from .client import ClientConnector
from .document import SharedDocument
from .errors import MessageError, RoupnError, StateError
from .frames import Frame
from .messages import IDENTIFIER_ALPHABET, ConnectionState, MessageType
from .ordering import UpdateKey
from .session import Message

__all__ = ["ClientSynchronizer", "create_client_synchronizer"]

logger = logging.getLogger(__name__)

IDENTIFIER_LENGTH = 24


def _new_identifier() -> str:
    return "".join(
        secrets.choice(IDENTIFIER_ALPHABET) for _ in range(IDENTIFIER_LENGTH)
    )


class ClientSynchronizer(ClientConnector):
    """A client connector that also keeps a shared document equal across the room.

    Everything :class:`~roupn.client.ClientConnector` does works here too. Extra
    event: ``on_state_change(sender_id)`` after another member's update or a full sync
    changed :attr:`public_state`.

    Args:
        public_state: the initial shared document; the creator's copy wins once a
            joiner is verified.
        private_state: a dict that the synchronizer keeps filled with the connection
            state, room code, ids, users and the verification code to show.
        window_per_user: recent updates kept per sender for reordering.
        synchronisation_interval: seconds between the creator's full syncs; 0 or None
            turns the periodic sync off (syncs on verification still happen).
    """

    def __init__(
        self,
        *,
        public_state: dict[str, Any] | None = None,
        private_state: dict[str, Any] | None = None,
        window_per_user: int = 16,
        synchronisation_interval: float | None = 60.0,
        **options: Any,
    ) -> None:
        on_state_change = options.pop("on_state_change", None)
        super().__init__(**options)
        self._listeners["on_state_change"] = []
        if on_state_change is not None:
            self.add_listener("on_state_change", on_state_change)
        strategy = self.settings.load_diff_strategy()
        self._document = SharedDocument(
            strategy, dict(public_state or {}), window_per_user
        )
        self._private: dict[str, Any] = (
            private_state if private_state is not None else {}
        )
        self._private_view = MappingProxyType(self._private)
        self.window_per_user = window_per_user
        self.synchronisation_interval = synchronisation_interval
        self._refresh_private_state()

    # State that the user reads and edits.

    @property
    def public_state(self) -> dict[str, Any]:
        """The shared document. Edit it, then call :meth:`send_update`."""
        return self._document.document

    @property
    def private_state(self) -> Mapping[str, Any]:
        """A read-only view of the connection: state, room code, ids, users, code."""
        return self._private_view

    def _refresh_private_state(self) -> None:
        creator_id = self.creator_id
        code = None
        if creator_id is not None and not self.is_creator:
            code = self.get_verification_code(creator_id)
        self._private.update(
            connection_state=self.state,
            room_code=self.room_code,
            user_id=self.user_id,
            creator_id=creator_id,
            users=self.users,
            verified_users=sorted(self.verified_users),
            verification_code=code,
        )

    def emit(self, event: str, *args: Any) -> None:
        self._refresh_private_state()
        super().emit(event, *args)
        if event == "on_user_verified" and self.is_creator and args[0] != self.user_id:
            self._spawn_sync()

    # Lifecycle.

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        assert self._task_group is not None
        if self.synchronisation_interval:
            self._task_group.start_soon(
                self._sync_periodically, self.synchronisation_interval
            )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        return await super().__aexit__(exc_type, exc, traceback)

    async def _sync_periodically(self, interval: float) -> None:
        while True:
            await anyio.sleep(interval)
            if self.is_creator and len(self.users) > 1:
                await self._send_full_sync()

    def _spawn_sync(self) -> None:
        if self._task_group is not None:
            self._task_group.start_soon(self._send_full_sync)

    # Sending. Taking local edits, recording them and applying other members'
    # updates all happen without an await in between. The user therefore cannot
    # edit the document while it is rolled back, and only the socket writes wait.

    async def send_update(self) -> str | None:
        """Send the changes made to :attr:`public_state` since the last update.

        Returns the update's identifier, or None when nothing changed.

        Raises:
            StateError: this client is not ``CONNECTED``; the changes stay pending.
        """
        if self.state is not ConnectionState.CONNECTED:
            raise StateError(
                f"cannot send a state update while {self.state}: wait for CONNECTED"
            )
        taken = self._take_local_update()
        if taken is None:
            return None
        identifier, frame = taken
        await self._send(frame)
        return identifier

    def _take_local_update(self) -> tuple[str, Frame] | None:
        """Seal the pending local edits as an update and record them as sent."""
        changes = self._document.take_local()
        if not changes:
            return None
        identifier = _new_identifier()
        update = {
            "identifier": identifier,
            "stateDelta": changes,
            "type": MessageType.STATE_UPDATE.value,
        }
        sealed, sent = self._current().seal_system_message(
            update, not_before=self._document.next_time()
        )
        key: UpdateKey = (int(sent["senderTime"]), str(sent["sender"]), identifier)
        self._document.record_local(key, changes)
        return identifier, sealed.frame

    async def _send_full_sync(self) -> None:
        if self.state is not ConnectionState.CONNECTED:
            return
        taken = self._take_local_update()
        sync = {"type": MessageType.STATE_SYNC.value, "state": self.public_state}
        try:
            sealed, _ = self._current().seal_system_message(sync)
            if taken is not None:
                await self._send(taken[1])
            await self._send(sealed.frame)
        except RoupnError as exc:
            logger.warning("full sync not sent: %s", exc)

    # Receiving.

    async def _intercept_message(self, message: Message) -> bool:
        kind = message.data.get("type")
        if kind not in (MessageType.STATE_UPDATE, MessageType.STATE_SYNC):
            return False
        taken = None
        if self.state is ConnectionState.CONNECTED:
            taken = self._take_local_update()
        changed = False
        try:
            if kind == MessageType.STATE_UPDATE:
                changed = self._document.receive_update(message.data)
            elif message.sender != self.creator_id:
                raise MessageError("a full sync did not come from the room's creator")
            else:
                self._document.receive_sync(message.data)
                changed = True
        except RoupnError as exc:
            self.emit("on_error", exc)
        if changed:
            self.emit("on_state_change", message.sender)
        if taken is not None:
            await self._send(taken[1])
        return True


def create_client_synchronizer(
    options: Mapping[str, Any] | None = None,
    private_state: dict[str, Any] | None = None,
    public_state: dict[str, Any] | None = None,
) -> ClientSynchronizer:
    """Make a synchronizer; ``options`` are those of the client connector plus
    ``window_per_user`` and ``synchronisation_interval``."""
    return ClientSynchronizer(
        public_state=public_state, private_state=private_state, **dict(options or {})
    )
