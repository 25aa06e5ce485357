"""The publisher: sends a relay process's queued commands to Redis, in order."""

from __future__ import annotations

import logging
import time
from typing import Any

import anyio

from roupn.backplane import ObserveLatency
from roupn.shared_relay import (
    CloseRoom,
    Command,
    PublishFrame,
    RemoveMember,
    SharedRelayState,
    VerifyUser,
    encode_frame_event,
)

from . import scripts
from .keys import REDIS_ERRORS, FailureLog, Keys, text

__all__ = ["SCRIPT_NAMES", "CommandWriter"]

logger = logging.getLogger(__name__)

SCRIPT_NAMES = ("CREATE", "JOIN", "LEAVE", "CLOSE", "VERIFY", "SNAPSHOT")

# Commands sent to Redis in one pipeline at most.
BATCH_SIZE = 256

# Queued commands above which readers of local sockets wait for the publisher.
HIGH_WATER = 4096


class CommandWriter:
    """Sends the commands of :attr:`SharedRelayState.outbox` as Redis pipelines.

    Commands go out in the order they were queued: frames as ``PUBLISH``, the
    others as calls of the scripts in :mod:`roupn_redis.scripts`.

    Args:
        client: a ``redis.asyncio.Redis`` client that returns bytes.
        keys: the cluster's key names.
        state: the state whose outbox this writer empties.
        retry_delay: seconds to wait before sending again after Redis failed.
        observe_latency: records the duration of each pipeline.
    """

    def __init__(
        self,
        client: Any,
        keys: Keys,
        state: SharedRelayState,
        retry_delay: float,
        observe_latency: ObserveLatency | None = None,
    ) -> None:
        self.client = client
        self.observe_latency = observe_latency
        self.keys = keys
        self.state = state
        self.retry_delay = retry_delay
        self.scripts: dict[str, str] = {}
        self._ready = anyio.Event()
        self._writable = anyio.Event()
        self._writable.set()
        self._failures = FailureLog(logger, "sending commands to Redis")
        state.notify = self.wake

    async def load_scripts(self) -> None:
        """Load every script into Redis and keep their SHA1 digests."""
        for name in SCRIPT_NAMES:
            source = getattr(scripts, name)
            self.scripts[name] = text(await self.client.script_load(source))

    def wake(self) -> None:
        """Tell :meth:`run` that commands are waiting."""
        self._ready.set()

    async def wait_writable(self) -> None:
        """Wait while more than ``HIGH_WATER`` commands are queued."""
        if len(self.state.outbox) < HIGH_WATER:
            return
        self._writable = anyio.Event()
        await self._writable.wait()

    async def run(self) -> None:
        """Send queued commands as they come, until cancelled."""
        while True:
            await self._ready.wait()
            self._ready = anyio.Event()
            await self.send_all()

    async def send_all(self) -> None:
        """Send every queued command, keeping them while Redis is unreachable."""
        outbox = self.state.outbox
        while outbox:
            batch = [outbox.popleft() for _ in range(min(len(outbox), BATCH_SIZE))]
            pipe = self.client.pipeline(transaction=False)
            for command in batch:
                self.queue(pipe, command)
            started = time.perf_counter()
            try:
                results = await pipe.execute(raise_on_error=False)
            except REDIS_ERRORS as exc:
                # Keep the commands, in order, until Redis is back. Readers of
                # local sockets wait once HIGH_WATER commands are queued.
                self._failures.failed(exc)
                outbox.extendleft(reversed(batch))
                await anyio.sleep(self.retry_delay)
                continue
            if self.observe_latency is not None:
                self.observe_latency(time.perf_counter() - started)
            self._failures.succeeded()
            if len(outbox) < HIGH_WATER:
                self._writable.set()
            for command, result in zip(batch, results, strict=True):
                if isinstance(result, Exception):
                    await self._retry(command, result)

    def queue(self, pipe: Any, command: Command) -> None:
        """Add the Redis calls of one command to a pipeline."""
        keys = self.keys
        code = command.room_code
        if isinstance(command, PublishFrame):
            data = encode_frame_event(command.sender, command.receiver, command.frame)
            pipe.publish(keys.channel(code), data)
        elif isinstance(command, VerifyUser):
            frame = command.frame
            pipe.evalsha(
                self.scripts["VERIFY"],
                2,
                keys.room(code),
                keys.members(code),
                command.user_id,
                frame.encode("utf-8") if isinstance(frame, str) else frame,
                keys.channel(code),
            )
        elif isinstance(command, RemoveMember):
            self.queue_leave(pipe, code, command.user_id, command.reason, command.code)
        elif isinstance(command, CloseRoom):
            pipe.evalsha(
                self.scripts["CLOSE"],
                3,
                keys.room(code),
                keys.members(code),
                keys.rooms,
                code,
                command.reason,
                keys.channel(code),
                keys.prefix,
            )

    def queue_leave(
        self, pipe: Any, code: str, user_id: str, reason: str, close_code: int
    ) -> None:
        """Add the removal of one member to a pipeline."""
        keys = self.keys
        pipe.evalsha(
            self.scripts["LEAVE"],
            3,
            keys.room(code),
            keys.members(code),
            keys.rooms,
            code,
            user_id,
            reason,
            close_code,
            keys.channel(code),
            keys.prefix,
        )

    async def _retry(self, command: Command, error: Exception) -> None:
        """Run a failed command again once, after loading the scripts again.

        Redis drops the scripts when it restarts or runs SCRIPT FLUSH.
        """
        logger.warning("= Redis command failed, retrying once: %s", error)
        await self.load_scripts()
        pipe = self.client.pipeline(transaction=False)
        self.queue(pipe, command)
        (result,) = await pipe.execute(raise_on_error=False)
        if isinstance(result, Exception):
            logger.error("= Redis command failed again: %s", result)
