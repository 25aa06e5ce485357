"""The plugin manager and the registry of backends by kind and name."""

from __future__ import annotations

import enum
import importlib
import importlib.util
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import pluggy

from . import hookspecs
from .errors import MissingDependencyError, UnknownBackendError

__all__ = [
    "Backend",
    "BackendKind",
    "Registry",
    "get_registry",
    "load_backend",
]

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "roupn"


class BackendKind(enum.Enum):
    """The kinds of backend that plugins provide."""

    TRANSPORT = "transport"
    CIPHER_SUITE = "cipher suite"
    SERIALIZER = "serializer"
    DIFF_STRATEGY = "diff strategy"
    BACKPLANE = "backplane"


_HOOKS = {
    BackendKind.TRANSPORT: "roupn_transports",
    BackendKind.CIPHER_SUITE: "roupn_cipher_suites",
    BackendKind.SERIALIZER: "roupn_serializers",
    BackendKind.DIFF_STRATEGY: "roupn_diff_strategies",
    BackendKind.BACKPLANE: "roupn_backplanes",
}


@dataclass(frozen=True, slots=True)
class Backend:
    """A named implementation of one backend kind, imported only when chosen.

    ``target`` is ``"module:attribute"``; the attribute is a class or factory called
    with no arguments to make the backend. ``requires`` lists the modules it imports,
    and ``extra`` the roupn extra that installs them.
    """

    name: str
    target: str
    summary: str = ""
    requires: tuple[str, ...] = ()
    extra: str | None = None
    kind: BackendKind | None = None
    distribution: str | None = None

    def missing_modules(self) -> list[str]:
        """Return the required modules that cannot be imported here."""
        return [m for m in self.requires if importlib.util.find_spec(m) is None]

    @property
    def usable(self) -> bool:
        """Whether every module this backend needs is installed."""
        return not self.missing_modules()

    def load(self) -> Any:
        """Import the target and call it to make the backend.

        Raises:
            MissingDependencyError: a required module is not installed.
        """
        kind = self.kind.value if self.kind else "backend"
        missing = self.missing_modules()
        if missing:
            raise MissingDependencyError(kind, self.name, missing[0], self.extra)
        module_name, _, attribute = self.target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            raise MissingDependencyError(
                kind, self.name, exc.name or module_name, self.extra
            ) from exc
        factory = getattr(module, attribute)
        return factory()


@dataclass
class Registry:
    """Every registered backend, by kind and then by name."""

    plugin_manager: pluggy.PluginManager
    backends: dict[BackendKind, dict[str, Backend]] = field(default_factory=dict)

    @classmethod
    def from_plugin_manager(cls, plugin_manager: pluggy.PluginManager) -> Registry:
        """Collect the backends that the manager's plugins register."""
        registry = cls(plugin_manager)
        distributions = {
            id(plugin): dist.project_name
            for plugin, dist in plugin_manager.list_plugin_distinfo()
        }
        for kind, hook_name in _HOOKS.items():
            by_name: dict[str, Backend] = {}
            hook = getattr(plugin_manager.hook, hook_name)
            for impl in hook.get_hookimpls():
                provided: Iterable[Backend] = impl.function() or ()
                dist = distributions.get(id(impl.plugin))
                for backend in provided:
                    if backend.name in by_name:
                        logger.warning(
                            "%s backend %r registered twice; keeping the one from %s",
                            kind.value,
                            backend.name,
                            by_name[backend.name].distribution,
                        )
                        continue
                    by_name[backend.name] = replace(
                        backend, kind=kind, distribution=dist
                    )
            registry.backends[kind] = by_name
        return registry

    def names(self, kind: BackendKind) -> list[str]:
        """Return the registered names of one kind, sorted."""
        return sorted(self.backends.get(kind, {}))

    def get(self, kind: BackendKind, name: str) -> Backend:
        """Return the backend record registered under ``name``.

        Raises:
            UnknownBackendError: no backend of that kind has that name.
        """
        try:
            return self.backends[kind][name]
        except KeyError:
            raise UnknownBackendError(kind.value, name, self.names(kind)) from None

    def load(self, kind: BackendKind, name: str) -> Any:
        """Make the backend registered under ``name``.

        Raises:
            UnknownBackendError: no backend of that kind has that name.
            MissingDependencyError: the backend needs a package that is not installed.
        """
        return self.get(kind, name).load()

    def all(self) -> list[Backend]:
        """Return every backend, grouped by kind and sorted by name."""
        return [
            self.backends[kind][name]
            for kind in BackendKind
            for name in self.names(kind)
        ]


def make_plugin_manager(load_entry_points: bool = True) -> pluggy.PluginManager:
    """Make a plugin manager with roupn's hooks, loading the ``roupn`` entry points."""
    plugin_manager = pluggy.PluginManager("roupn")
    plugin_manager.add_hookspecs(hookspecs)
    if load_entry_points:
        plugin_manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    return plugin_manager


_registry: Registry | None = None


def get_registry() -> Registry:
    """Return the process-wide registry, loading the entry points on first use."""
    global _registry
    if _registry is None:
        _registry = Registry.from_plugin_manager(make_plugin_manager())
    return _registry


def load_backend(kind: BackendKind, name: str) -> Any:
    """Make a backend by kind and name from the process-wide registry."""
    return get_registry().load(kind, name)
