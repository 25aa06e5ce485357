"""The registered backends of one kind, loaded, with the ones that cannot load."""

from __future__ import annotations

import logging
from typing import Any

from roupn.errors import MissingDependencyError
from roupn.plugins import BackendKind, get_registry

from .results import Skip

__all__ = ["load_backends"]

logger = logging.getLogger(__name__)


def load_backends(kind: BackendKind) -> tuple[list[tuple[str, Any]], list[Skip]]:
    """Load every registered backend of ``kind``, sorted by name.

    Returns the loaded backends as ``(name, backend)`` and a skip record for each
    backend whose dependency is missing or whose import failed.
    """
    registry = get_registry()
    loaded: list[tuple[str, Any]] = []
    skipped: list[Skip] = []
    for name in registry.names(kind):
        subject = f"{kind.value} {name}"
        try:
            loaded.append((name, registry.load(kind, name)))
        except MissingDependencyError as exc:
            skipped.append(Skip(subject, str(exc)))
        except Exception as exc:
            # A third-party plugin can fail in any way when imported, and one
            # broken plugin must not stop the measurements of the others.
            logger.warning("%s failed to load", subject, exc_info=True)
            skipped.append(Skip(subject, f"failed to load: {exc!r}"))
    return loaded, skipped
