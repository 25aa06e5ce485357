"""The ``memory`` backplane: every room lives in this relay process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, ClassVar

from roupn.backplane import AdmitUser, BackplaneOptions, ObserveLatency, RunActions
from roupn.relay import Action, JoinRefused, RelayState, RoomTicket

__all__ = ["MemoryBackplane", "MemoryRoomLink"]


class MemoryRoomLink:
    """Creates and joins the rooms of one :class:`RelayState`, without I/O."""

    wait_writable = None

    def __init__(self, state: RelayState) -> None:
        self.state = state

    async def create_room(self, limit: int | None) -> RoomTicket:
        return self.state.create_room(limit)

    async def join(
        self, room_code: str | None, creator_secret: str | None, admit: AdmitUser
    ) -> tuple[str, list[Action]] | JoinRefused:
        joined = self.state.join(room_code, creator_secret)
        if not isinstance(joined, JoinRefused):
            admit(joined[0])
        return joined


class MemoryBackplane:
    """Rooms in one process: the relay's behaviour without a backplane."""

    name: ClassVar[str] = "memory"

    def create_state(
        self, options: BackplaneOptions, **relay_options: Any
    ) -> RelayState:
        return RelayState(**relay_options)

    @asynccontextmanager
    async def connect(
        self,
        state: RelayState,
        options: BackplaneOptions,
        run: RunActions,
        observe_latency: ObserveLatency | None = None,
    ) -> AsyncIterator[MemoryRoomLink]:
        yield MemoryRoomLink(state)
