"""The ``redis`` backplane: rooms shared by several relay processes through Redis.

Room records live in Redis and room events travel over Redis pub/sub, so a
creator connected to one relay process and joiners connected to others share one
room. It needs ``pip install 'roupn[redis]'`` and runs on asyncio only, because
it uses the ``redis.asyncio`` client.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any, ClassVar

import anyio

from roupn.backplane import BackplaneOptions, ObserveLatency, RunActions
from roupn.errors import BackplaneError
from roupn.hookspecs import hookimpl
from roupn.plugins import Backend
from roupn.relay import RelayState
from roupn.shared_relay import SharedRelayState

__all__ = ["RedisBackplane"]

logger = logging.getLogger(__name__)


class RedisBackplane:
    """Shares rooms between relay processes through one Redis server."""

    name: ClassVar[str] = "redis"

    def create_state(
        self, options: BackplaneOptions, **relay_options: Any
    ) -> SharedRelayState:
        return SharedRelayState(node_id=str(uuid.uuid4()), **relay_options)

    @asynccontextmanager
    async def connect(
        self,
        state: RelayState,
        options: BackplaneOptions,
        run: RunActions,
        observe_latency: ObserveLatency | None = None,
    ) -> AsyncIterator[Any]:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise BackplaneError(
                "the redis backplane runs only on asyncio, because the redis.asyncio "
                "client does: start the relay on asyncio (roupn serve "
                "--async-backend asyncio, or anyio.run(..., backend='asyncio'))"
            ) from None
        if not isinstance(state, SharedRelayState):
            raise TypeError("the redis backplane needs the state it created")

        import redis.asyncio

        from .link import RedisRoomLink

        try:
            client = redis.asyncio.Redis.from_url(options.url, decode_responses=False)
        except ValueError as exc:
            raise BackplaneError(
                f"invalid Redis URL {options.url!r}: {exc}. Use a URL such as "
                "redis://127.0.0.1:6379/0"
            ) from None
        try:
            link = RedisRoomLink(client, state, options, run, observe_latency)
            await link.prepare()
            try:
                async with anyio.create_task_group() as group:
                    link.start(group)
                    try:
                        yield link
                    finally:
                        group.cancel_scope.cancel()
            finally:
                # After the link's tasks ended, so that it sends the last commands
                # alone and in order.
                await link.stop()
        finally:
            with anyio.CancelScope(shield=True):
                await client.aclose()


@hookimpl
def roupn_backplanes() -> Iterable[Backend]:
    return [
        Backend(
            "redis",
            "roupn_redis:RedisBackplane",
            summary="rooms shared by several relay processes through Redis "
            "(asyncio only)",
            requires=("redis",),
            extra="redis",
        )
    ]
