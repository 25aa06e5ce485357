"""Heartbeats of relay processes, and the removal of dead processes' members.

Each relay process (a node) sets its heartbeat key every heartbeat interval,
with a time to live of the node timeout. Once per interval every node also
looks for nodes whose key expired, and removes their members from their rooms
as if each had left.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import anyio

from roupn.backplane import BackplaneOptions

from .commands import CommandWriter
from .keys import REDIS_ERRORS, FailureLog, Keys, text

__all__ = ["NODE_TIMEOUT_REASON", "NodeMonitor"]

logger = logging.getLogger(__name__)

# The reason in the ``left`` event of a member whose relay process died.
NODE_TIMEOUT_REASON = "relay_unavailable"

# The close code in those events: 1001, going away.
GOING_AWAY = 1001


class NodeMonitor:
    """Sends one node's heartbeats and reaps the nodes that stopped sending theirs.

    Args:
        client: a ``redis.asyncio.Redis`` client that returns bytes.
        keys: the cluster's key names.
        node_id: this node's id.
        options: the heartbeat interval and node timeout.
        writer: queues the scripts that remove members.
        on_key_lost: called when this node's own key was gone at a heartbeat.
    """

    def __init__(
        self,
        client: Any,
        keys: Keys,
        node_id: str,
        options: BackplaneOptions,
        writer: CommandWriter,
        on_key_lost: Callable[[], None],
    ) -> None:
        self.client = client
        self.keys = keys
        self.node_id = node_id
        self.options = options
        self.writer = writer
        self.on_key_lost = on_key_lost
        self._heartbeat_failures = FailureLog(logger, "heartbeat to Redis")
        self._reaper_failures = FailureLog(logger, "looking for dead relay processes")

    async def beat(self, renew: bool = False) -> bool:
        """Set this node's heartbeat key, or with ``renew`` only if it still exists.

        Returns False when ``renew`` found the key gone.
        """
        timeout_ms = int(self.options.node_timeout * 1000)
        pipe = self.client.pipeline(transaction=False)
        key = self.keys.node(self.node_id)
        pipe.set(key, repr(time.time()), px=timeout_ms, xx=renew)
        pipe.sadd(self.keys.nodes, self.node_id)
        renewed, _ = await pipe.execute()
        return bool(renewed)

    async def run_heartbeat(self) -> None:
        """Send heartbeats until cancelled."""
        while True:
            await anyio.sleep(self.options.heartbeat_interval)
            try:
                renewed = await self.beat(renew=True)
                self._heartbeat_failures.succeeded()
                if renewed:
                    continue
                # Either this node paused for longer than the node timeout and the
                # others removed its members, or Redis lost its data. The replicas
                # cannot be trusted in both cases.
                logger.error(
                    "= the heartbeat key of relay node %s was gone; closing its "
                    "members and joining the backplane again",
                    self.node_id,
                )
                self.on_key_lost()
                await self.beat()
            except REDIS_ERRORS as exc:
                self._heartbeat_failures.failed(exc)

    async def run_reaper(self) -> None:
        """Look for dead nodes once per heartbeat interval, until cancelled."""
        while True:
            await anyio.sleep(self.options.heartbeat_interval)
            try:
                await self.reap()
                self._reaper_failures.succeeded()
            except REDIS_ERRORS as exc:
                self._reaper_failures.failed(exc)

    async def reap(self) -> list[str]:
        """Remove the members of nodes whose heartbeat expired.

        Returns the ids of the nodes found dead. Several live nodes may reap at
        once: a short lock per dead node keeps them from repeating the work, and
        removing a member twice does nothing the second time.
        """
        dead: list[str] = []
        timeout_ms = int(self.options.node_timeout * 1000)
        for raw in await self.client.smembers(self.keys.nodes):
            node_id = text(raw)
            if node_id == self.node_id:
                continue
            if await self.client.exists(self.keys.node(node_id)):
                continue
            lock = self.keys.reaping(node_id)
            if not await self.client.set(lock, self.node_id, nx=True, px=timeout_ms):
                continue
            logger.warning(
                "= relay node %s sent no heartbeat for %s s; removing its members",
                node_id,
                self.options.node_timeout,
            )
            await self.remove_members(node_id, NODE_TIMEOUT_REASON)
            await self.client.delete(self.keys.node_members(node_id))
            await self.client.srem(self.keys.nodes, node_id)
            dead.append(node_id)
        return dead

    async def remove_members(self, node_id: str, reason: str) -> None:
        """Remove every member that a node serves from its room."""
        entries = await self.client.smembers(self.keys.node_members(node_id))
        if not entries:
            return
        pipe = self.client.pipeline(transaction=False)
        for entry in entries:
            code, _, user_id = text(entry).partition(" ")
            self.writer.queue_leave(pipe, code, user_id, reason, GOING_AWAY)
        await pipe.execute()

    async def leave(self) -> None:
        """Remove this node's members, heartbeat and registration."""
        await self.remove_members(self.node_id, "relay_stopped")
        await self.client.delete(
            self.keys.node(self.node_id), self.keys.node_members(self.node_id)
        )
        await self.client.srem(self.keys.nodes, self.node_id)
