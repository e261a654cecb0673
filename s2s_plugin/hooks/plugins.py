"""Building a host's plugin manager the pluggy way, and loading third-party plugins safely.

``make_plugin_manager()`` does what pluggy's eggsample does (``PluginManager(PROJECT_NAME)`` →
``add_hookspecs`` → load the ``s2s_postback`` entry points → register the host's built-ins), with
the failure handling a host needs:

- a plugin that fails to import, to register, or that implements a hook that does not exist (a
  misspelt name, found by ``check_pending()``) is skipped with a ``PluginLoadWarning`` naming it;
- ``S2S_PLUGINS_STRICT=1`` re-raises instead, for CI and development;
- ``S2S_DISABLE_PLUGINS=a,b`` never loads the plugins named (entry-point or distribution names;
  ``*`` for all of them).

The postback plugin's own entry point (``s2s_postback``) is never loaded here: a host installs the
plugin itself with ``s2s_plugin.install``.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.metadata
import os
import sys
import types
import warnings
import weakref
from collections.abc import Iterable, Mapping
from typing import Any, Optional

import pluggy

import hookspecs

#: Set to 1 (true, yes, on) to make a plugin that fails to load an error instead of a warning.
STRICT_ENV = "S2S_PLUGINS_STRICT"
#: Comma-separated plugin names (entry-point or distribution names) never to load; ``*`` for all.
DISABLE_ENV = "S2S_DISABLE_PLUGINS"
#: The postback plugin's own entry point, which hosts replace with ``install``.
OWN_ENTRY_POINT = hookspecs.PROJECT_NAME


class PluginLoadWarning(UserWarning):
    """A third-party plugin was not loaded; the message names it and says why."""


@dataclasses.dataclass(frozen=True)
class PluginInfo:
    """A registered plugin: its name, where it comes from, and the hooks it implements."""

    name: str
    distribution: Optional[str]
    version: Optional[str]
    hooks: tuple[str, ...]
    entry_point: Optional[str] = None
    module: Optional[str] = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values."""
        return {**dataclasses.asdict(self), "hooks": list(self.hooks)}


@dataclasses.dataclass(frozen=True)
class SkippedPlugin:
    """An installed plugin that was not loaded: ``reason`` says why in one sentence."""

    name: str
    distribution: Optional[str]
    version: Optional[str]
    entry_point: str
    reason: str
    disabled: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values."""
        return dataclasses.asdict(self)


@dataclasses.dataclass
class LoadReport:
    """What ``load_plugins`` did: the plugins it loaded and the ones it skipped."""

    loaded: list[PluginInfo] = dataclasses.field(default_factory=list)
    skipped: list[SkippedPlugin] = dataclasses.field(default_factory=list)


_reports: weakref.WeakKeyDictionary[pluggy.PluginManager, LoadReport] = weakref.WeakKeyDictionary()


def _truthy(value: Optional[str]) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def _norm(name: str) -> str:
    return name.strip().lower().replace("-", "_").replace(".", "_")


def strict_from_env() -> bool:
    """Whether ``S2S_PLUGINS_STRICT`` asks for strict loading."""
    return _truthy(os.environ.get(STRICT_ENV))


def disabled_from_env() -> frozenset[str]:
    """The plugin names ``S2S_DISABLE_PLUGINS`` blocks (normalised; ``*`` blocks every plugin)."""
    raw = os.environ.get(DISABLE_ENV, "")
    return frozenset(_norm(part) for part in raw.replace(" ", ",").split(",") if part.strip())


def make_plugin_manager(
    *,
    load_entrypoints: bool = True,
    builtins: Mapping[str, object] = {},
    strict: Optional[bool] = None,
    disabled: Optional[Iterable[str]] = None,
) -> pluggy.PluginManager:
    """A fresh plugin manager with the hook contract, the installed plugins and ``builtins``.

    :param load_entrypoints: False to load no third-party plugin (the demo, some tests).
    :param builtins: the host's own plugins by name, registered after the entry points.
    :param strict: re-raise a plugin's loading error; default ``S2S_PLUGINS_STRICT``.
    :param disabled: plugin names not to load; default ``S2S_DISABLE_PLUGINS``.
    :raises pluggy.PluginValidationError: when a built-in implements a hook that does not exist.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    if load_entrypoints:
        load_plugins(pm, strict=strict, disabled=disabled)
    else:
        _reports[pm] = LoadReport()
    for name, plugin in builtins.items():
        pm.register(plugin, name=name)
    # The host's own code is not foreign: a misspelt hook in it is a bug to fail on, now.
    pm.check_pending()
    return pm


_STRICT_NOTE = "while loading s2s_postback plugin"


def loading_failure(exc: BaseException) -> Optional[str]:
    """One line for a plugin that failed to load in strict mode (the error ``load_plugins``
    re-raised), for command lines to print instead of a traceback; None for any other error."""
    notes = [note for note in getattr(exc, "__notes__", ()) if note.startswith(_STRICT_NOTE)]
    if not notes:
        return None
    problem = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}{': ' + problem if problem else ''} ({notes[-1]})"


def load_plugins(
    pm: pluggy.PluginManager,
    *,
    strict: Optional[bool] = None,
    disabled: Optional[Iterable[str]] = None,
    exclude: Iterable[str] = (OWN_ENTRY_POINT,),
) -> LoadReport:
    """Register every plugin of the ``s2s_postback`` entry-point group on ``pm``, safely.

    Plugins already registered or blocked on ``pm``, the ones in ``exclude`` and the disabled ones
    are skipped. Each plugin is checked right after it is registered (``check_hooks``: the part of
    ``pm.check_pending()`` that concerns it), so a hook name that is not in the contract is that
    plugin's failure, not the host's.

    :return: what was loaded and what was skipped (also available later from ``load_report(pm)``).
    :raises Exception: the plugin's own error, in strict mode, with a note naming the plugin.
    """
    strict = strict_from_env() if strict is None else strict
    blocked = disabled_from_env() if disabled is None else frozenset(_norm(n) for n in disabled)
    excluded = {_norm(n) for n in exclude}
    report = _reports.setdefault(pm, LoadReport())
    for dist, entry_point in _entry_points():
        dist_name = dist.metadata["Name"] if dist is not None else None
        version = dist.version if dist is not None else None
        if (
            _norm(entry_point.name) in excluded
            or pm.get_plugin(entry_point.name) is not None
            or pm.is_blocked(entry_point.name)
        ):
            continue
        if (
            "*" in blocked
            or "all" in blocked
            or _norm(entry_point.name) in blocked
            or (dist_name and _norm(dist_name) in blocked)
        ):
            report.skipped.append(
                SkippedPlugin(
                    entry_point.name, dist_name, version, entry_point.value, f"disabled by {DISABLE_ENV}", True
                )
            )
            continue
        try:
            plugin = entry_point.load()
            pm.register(plugin, name=entry_point.name)
            check_hooks(pm, plugin)
        except Exception as exc:
            if pm.get_plugin(entry_point.name) is not None:
                pm.unregister(name=entry_point.name)  # a half-registered plugin must not answer hooks
            where = f"{dist_name} {version}" if dist_name else entry_point.value
            if strict:
                exc.add_note(f"{_STRICT_NOTE} {entry_point.name!r} ({where}); unset {STRICT_ENV} to skip it")
                raise
            reason = f"{type(exc).__name__}: {exc}"
            report.skipped.append(SkippedPlugin(entry_point.name, dist_name, version, entry_point.value, reason))
            warnings.warn(
                f"s2s_postback plugin {entry_point.name!r} ({where}) was not loaded: {reason}. "
                f"Fix or uninstall it, or list it in {DISABLE_ENV} to silence this.",
                PluginLoadWarning,
                stacklevel=2,
            )
            continue
        report.loaded.append(PluginInfo(entry_point.name, dist_name, version, _hooks(pm, plugin), entry_point.value))
    return report


def check_hooks(pm: pluggy.PluginManager, plugin: object) -> None:
    """``pm.check_pending()`` for one plugin: every hook it implements must be in the contract.

    :raises pluggy.PluginValidationError: naming the unknown hook and the closest real one.
    """
    for caller in pm.get_hookcallers(plugin) or ():
        if caller.has_spec():
            continue
        if any(impl.plugin is plugin and not impl.optionalhook for impl in caller.get_hookimpls()):
            close = difflib.get_close_matches(caller.name, _spec_names(), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; the hooks are: {', '.join(_spec_names())}"
            raise pluggy.PluginValidationError(plugin, f"unknown hook {caller.name!r}{hint}")


def _spec_names() -> list[str]:
    return sorted(
        name
        for name in dir(hookspecs.specs)
        if hasattr(getattr(hookspecs.specs, name), f"{hookspecs.PROJECT_NAME}_spec")
    )


def load_report(pm: pluggy.PluginManager) -> LoadReport:
    """What ``load_plugins`` did on ``pm`` (empty when it was never called)."""
    return _reports.get(pm) or LoadReport()


def describe_plugins(pm: pluggy.PluginManager) -> list[PluginInfo]:
    """Every plugin registered on ``pm``, with its distribution, version and hooks, by name."""
    from_entry_points = {info.name: info for info in load_report(pm).loaded}
    described = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:  # a blocked name
            continue
        known = from_entry_points.get(name)
        if known is not None and pm.get_plugin(name) is plugin:
            described.append(dataclasses.replace(known, hooks=_hooks(pm, plugin)))
            continue
        module = _module_of(plugin)
        dist_name, version = _distribution_of(module)
        described.append(PluginInfo(name, dist_name, version, _hooks(pm, plugin), module=module))
    return sorted(described, key=lambda info: info.name)


def _entry_points() -> list[tuple[Optional[importlib.metadata.Distribution], importlib.metadata.EntryPoint]]:
    found = []
    seen: set[tuple[str, str]] = set()
    for dist in importlib.metadata.distributions():
        for entry_point in dist.entry_points:
            # A distribution seen twice on sys.path (an editable install and a copy) is loaded once.
            if entry_point.group == hookspecs.PROJECT_NAME and (entry_point.name, entry_point.value) not in seen:
                seen.add((entry_point.name, entry_point.value))
                found.append((dist, entry_point))
    return sorted(found, key=lambda pair: pair[1].name)


def _hooks(pm: pluggy.PluginManager, plugin: object) -> tuple[str, ...]:
    return tuple(sorted(caller.name for caller in pm.get_hookcallers(plugin) or ()))


def _module_of(plugin: object) -> str:
    return plugin.__name__ if isinstance(plugin, types.ModuleType) else type(plugin).__module__


def _distribution_of(module: str) -> tuple[Optional[str], Optional[str]]:
    """The distribution that ships ``module`` and its version; for an editable install, which
    ``packages_distributions`` cannot see, the package's ``__version__``."""
    top = module.split(".")[0]
    for name in importlib.metadata.packages_distributions().get(top) or []:
        try:
            return name, importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:  # pragma: no cover  (a broken install)
            continue
    package = sys.modules.get(top)
    version = getattr(package, "__version__", None)
    return None, str(version) if version is not None else None


def report_lines(pm: pluggy.PluginManager) -> list[str]:
    """A plain-text listing for a terminal: each plugin, its version and hooks, then the skipped."""
    lines = []
    for info in describe_plugins(pm):
        origin = " ".join(part for part in (info.distribution or info.module, info.version) if part)
        lines.append(f"{info.name}  {origin}")
        lines.append(f"    hooks: {', '.join(info.hooks) or '(none)'}")
    for skipped in load_report(pm).skipped:
        origin = f"{skipped.distribution} {skipped.version}" if skipped.distribution else skipped.entry_point
        lines.append(f"{skipped.name}  {origin}  NOT LOADED: {skipped.reason}")
    return lines or ["no s2s_postback plugins are installed"]


def report_dict(pm: pluggy.PluginManager) -> dict[str, Any]:
    """The same as JSON-ready values: ``{"plugins": [...], "skipped": [...]}``."""
    return {
        "plugins": [info.to_dict() for info in describe_plugins(pm)],
        "skipped": [skipped.to_dict() for skipped in load_report(pm).skipped],
    }
