"""Relay metrics in the Prometheus text format, through ``prometheus-client``.

The relay calls a :class:`RelayMetrics` object where events happen (a frame
arrived, a join was rejected, a slow reader was dropped). The base class ignores
every call, so a relay without metrics pays one method call per event.
:class:`PrometheusRelayMetrics` counts them and renders them for ``GET /metrics``.

Labels never carry room codes or user ids: the only label is the rejection
category, from the fixed set in :data:`REJECTION_CATEGORIES`.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from .errors import MissingDependencyError

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import CollectorRegistry

__all__ = [
    "REJECTION_CATEGORIES",
    "PrometheusRelayMetrics",
    "RelayMetrics",
    "make_relay_metrics",
    "metrics_available",
]

logger = logging.getLogger(__name__)

# The category each rejection reason is counted under. The reasons are the close
# reasons of room sockets plus a few names for rejected HTTP requests.
REJECTION_CATEGORIES: dict[str, str] = {
    "origin": "origin",
    "rate_limited": "rate_limited",
    "too_many_rooms": "too_many_rooms",
    "too_many_connections": "too_many_connections",
    "too_many_connections_from_address": "too_many_connections",
    "invalid_limit": "invalid_request",
    "missing_room_code": "invalid_request",
    "invalid_creator_secret": "invalid_request",
    "creator_already_joined": "invalid_request",
    "room_not_found": "room_not_found",
    "room_full": "room_full",
    "too_many_pending": "too_many_pending",
    "frame_too_big": "too_big",
    "binary_frames_only": "invalid_frame",
    "text_frames_only": "invalid_frame",
    "invalid_frame": "invalid_frame",
    "idle_timeout": "idle_timeout",
    "verification_timeout": "verification_timeout",
}

# Counted when a rejection reason is missing from REJECTION_CATEGORIES.
OTHER_CATEGORY = "other"

# Upper bounds of the users-per-room buckets.
ROOM_USER_BUCKETS = (1, 2, 3, 5, 10, 20, 50, 100, 200, 500)

# Upper bounds, in seconds, of the backplane latency buckets.
BACKPLANE_LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)


def metrics_available() -> bool:
    """Return whether ``prometheus-client`` (the ``metrics`` extra) is installed."""
    return importlib.util.find_spec("prometheus_client") is not None


class RelayMetrics:
    """The relay events that metrics count, one method each. This class ignores them.

    A relay calls these methods from its event loop thread. A backplane reaches
    the same object as ``ServerConnector.metrics`` and reports its latency with
    :meth:`observe_backplane_latency`.
    """

    enabled: bool = False

    def frame_received(self, size: int) -> None:
        """Count a frame of ``size`` bytes (characters for text frames) from a user."""

    def frames_sent(self, count: int, size: int) -> None:
        """Count ``count`` copies of a frame of ``size`` bytes queued for sockets.

        A relay that queues one frame for several users calls this once.
        """

    def room_created(self) -> None:
        """Count a created room."""

    def user_joined(self) -> None:
        """Count a socket admitted to a room."""

    def rejected(self, reason: str) -> None:
        """Count a rejected request or join, or a socket closed for breaking a rule.

        ``reason`` is a close reason such as ``room_full`` or another key of
        :data:`REJECTION_CATEGORIES`, and is counted under its category.
        """

    def socket_closed(self, reason: str) -> None:
        """Count a socket the relay closes, as a rejection if ``reason`` is one.

        Closes for other reasons (``kicked``, ``room_closed``, ``too_slow``) are
        not counted here.
        """

    def slow_consumer_dropped(self) -> None:
        """Count a user disconnected because its send queue was full."""

    def observe_backplane_latency(self, seconds: float) -> None:
        """Record how long one backplane operation took, in seconds."""

    def render(self, accept: str | None) -> tuple[bytes, str] | None:
        """Return the metrics and their content type for an ``Accept`` header.

        Returns None when metrics are off.
        """
        return None


class _MissingPackageMetrics(RelayMetrics):
    """Metrics that were not turned off but cannot run without ``prometheus-client``."""

    def __init__(self) -> None:
        self._warned = False

    def render(self, accept: str | None) -> tuple[bytes, str] | None:
        if not self._warned:
            self._warned = True
            logger.warning(
                "GET /metrics returns 404 because prometheus-client is not "
                "installed. Run pip install 'roupn[metrics]', or turn metrics off "
                "(roupn serve --no-metrics) to hide this message"
            )
        return None


def make_relay_metrics(
    enabled: bool | None,
    *,
    open_connections: Callable[[], int],
    room_sizes: Callable[[], Iterable[int]],
) -> RelayMetrics:
    """Make the metrics of one relay.

    ``enabled`` True requires ``prometheus-client``, None uses it if it is
    installed, and False turns metrics off. The callables are read at scrape
    time: the number of open room sockets and the number of users in each room.

    Raises:
        MissingDependencyError: ``enabled`` is True and ``prometheus-client`` is
            not installed.
    """
    if enabled is False:
        return RelayMetrics()
    if not metrics_available():
        if enabled:
            raise MissingDependencyError(
                "metrics", "prometheus", "prometheus_client", "metrics"
            )
        return _MissingPackageMetrics()
    return PrometheusRelayMetrics(
        open_connections=open_connections, room_sizes=room_sizes
    )


class PrometheusRelayMetrics(RelayMetrics):
    """Relay metrics in a registry of their own, rendered by ``prometheus-client``.

    Each instance has its own ``CollectorRegistry``, so several relays in one
    process keep separate numbers. Event counts are plain integers read at
    scrape time, because a ``prometheus-client`` counter takes a lock on every
    increment and frames are counted on the relay's hot path.

    Args:
        open_connections: returns the number of open room sockets.
        room_sizes: returns the number of users in each room.
    """

    enabled = True

    def __init__(
        self,
        *,
        open_connections: Callable[[], int],
        room_sizes: Callable[[], Iterable[int]],
    ) -> None:
        from prometheus_client import CollectorRegistry, Histogram
        from prometheus_client.process_collector import ProcessCollector

        self.open_connections = open_connections
        self.room_sizes = room_sizes
        self.frames_received = 0
        self.bytes_received = 0
        self.frames_relayed = 0
        self.bytes_relayed = 0
        self.rooms_created = 0
        self.users_joined = 0
        self.slow_consumers = 0
        self.rejections = dict.fromkeys(
            [*sorted(set(REJECTION_CATEGORIES.values())), OTHER_CATEGORY], 0
        )

        self.registry: CollectorRegistry = CollectorRegistry()
        self.registry.register(_RelayCollector(self))
        self._backplane_latency = Histogram(
            "roupn_backplane_latency_seconds",
            "Time one backplane operation took.",
            buckets=BACKPLANE_LATENCY_BUCKETS,
            registry=self.registry,
        )
        ProcessCollector(registry=self.registry)

    def frame_received(self, size: int) -> None:
        self.frames_received += 1
        self.bytes_received += size

    def frames_sent(self, count: int, size: int) -> None:
        self.frames_relayed += count
        self.bytes_relayed += count * size

    def room_created(self) -> None:
        self.rooms_created += 1

    def user_joined(self) -> None:
        self.users_joined += 1

    def rejected(self, reason: str) -> None:
        self.rejections[REJECTION_CATEGORIES.get(reason, OTHER_CATEGORY)] += 1

    def socket_closed(self, reason: str) -> None:
        category = REJECTION_CATEGORIES.get(reason)
        if category is not None:
            self.rejections[category] += 1

    def slow_consumer_dropped(self) -> None:
        self.slow_consumers += 1

    def observe_backplane_latency(self, seconds: float) -> None:
        self._backplane_latency.observe(seconds)

    def render(self, accept: str | None) -> tuple[bytes, str] | None:
        from prometheus_client.exposition import choose_encoder

        encode, content_type = choose_encoder(accept or "")
        return encode(self.registry), content_type


class _RelayCollector:
    """Turns the counts of a :class:`PrometheusRelayMetrics` into metric families."""

    def __init__(self, metrics: PrometheusRelayMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.metrics_core import (
            CounterMetricFamily,
            GaugeHistogramMetricFamily,
            GaugeMetricFamily,
        )

        metrics = self._metrics
        sizes = list(metrics.room_sizes())
        yield GaugeMetricFamily(
            "roupn_open_connections",
            "Open room sockets.",
            value=metrics.open_connections(),
        )
        yield GaugeMetricFamily("roupn_rooms", "Rooms on this relay.", value=len(sizes))
        # Each bucket counts the rooms with at most that many users. The bounds
        # are written as floats ("1.0"), as prometheus-client writes its own.
        buckets = [
            (str(float(bound)), float(sum(1 for size in sizes if size <= bound)))
            for bound in ROOM_USER_BUCKETS
        ]
        buckets.append(("+Inf", float(len(sizes))))
        yield GaugeHistogramMetricFamily(
            "roupn_room_users",
            "Users in each room at the time of the scrape.",
            buckets=buckets,
            gsum_value=float(sum(sizes)),
        )

        for name, documentation, value in [
            ("roupn_rooms_created", "Rooms created.", metrics.rooms_created),
            ("roupn_joins", "Sockets admitted to a room.", metrics.users_joined),
            (
                "roupn_frames_received",
                "Frames received from users.",
                metrics.frames_received,
            ),
            (
                "roupn_received_bytes",
                "Bytes of frames received from users (characters of text frames).",
                metrics.bytes_received,
            ),
            (
                "roupn_frames_relayed",
                "Frames queued for users' sockets, one per receiver.",
                metrics.frames_relayed,
            ),
            (
                "roupn_relayed_bytes",
                "Bytes of frames queued for users' sockets (characters of text "
                "frames).",
                metrics.bytes_relayed,
            ),
            (
                "roupn_slow_consumers_dropped",
                "Users disconnected because their send queue was full.",
                metrics.slow_consumers,
            ),
        ]:
            yield CounterMetricFamily(name, documentation, value=value)

        rejections = CounterMetricFamily(
            "roupn_rejections",
            "Requests, joins and sockets rejected, by category.",
            labels=["reason"],
        )
        for category, count in metrics.rejections.items():
            rejections.add_metric([category], count)
        yield rejections
