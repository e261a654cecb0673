"""Calling the extension hooks one implementation at a time, so one plugin's bug stays its own.

``pm.hook.NAME(...)`` stops at the first exception and loses every other plugin's answer. The
plugin calls the extension hooks through these helpers instead: each implementation is called in
pluggy's order (last registered first, ``tryfirst``/``trylast`` honoured), an exception or a
wrong return value is caught and becomes a ``HookFailure`` naming the plugin, and the remaining
implementations still run. What a failure means for a postback is decided by the caller
(see docs/hooks.md, "When a plugin fails").

Wrappers (``wrapper=True``/``hookwrapper=True``) are not run by these helpers: an extension hook's
implementations are independent answers, not a chain to wrap.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable, Sequence
from typing import Any, Generic, Optional, TypeVar

from pluggy import HookCaller, HookImpl

log = logging.getLogger("s2s_postback.plugins")

T = TypeVar("T")

#: ``check(value) -> value``: validates (and may normalise) an implementation's return value;
#: raises ``BadAnswer`` with a sentence saying what was wrong.
Check = Callable[[Any], Any]

_FAILURE_NOTE = re.compile(r"plugin '[^']+' failed in [a-z_]+")


class BadAnswer(TypeError):
    """An implementation returned something its hook does not accept."""


@dataclasses.dataclass(frozen=True)
class HookFailure:
    """One implementation of one hook that raised or returned something unusable."""

    hook: str
    plugin: str
    error: BaseException

    def describe(self) -> str:
        """One sentence for an attempt's reason, an event or a warning."""
        message = str(self.error).strip().splitlines()[0] if str(self.error).strip() else ""
        if isinstance(self.error, BadAnswer):
            detail = f"it {message}"
        else:
            detail = f"{type(self.error).__name__}: {message}" if message else type(self.error).__name__
        return f"plugin {self.plugin!r} failed in {self.hook}: {detail}"


def is_failure_note(text: Optional[str]) -> bool:
    """Whether ``text`` (a reason, an event) reports a failing plugin, as ``describe`` words it."""
    return bool(text) and _FAILURE_NOTE.search(text or "") is not None


@dataclasses.dataclass(frozen=True)
class Collected(Generic[T]):
    """Every implementation's answer (``(plugin name, value)``, None answers left out) and failures."""

    results: list[tuple[str, T]]
    failures: list[HookFailure]


@dataclasses.dataclass(frozen=True)
class First(Generic[T]):
    """The first usable answer (or None), the plugin that gave it, and the failures met on the way."""

    value: Optional[T]
    plugin: Optional[str]
    failures: list[HookFailure]


@dataclasses.dataclass(frozen=True)
class Chained(Generic[T]):
    """The value after every implementation had its turn, who changed it, and the failures."""

    value: T
    changed_by: list[str]
    failures: list[HookFailure]


def implementations(hook: HookCaller) -> list[HookImpl]:
    """The hook's implementations in the order pluggy calls them, wrappers left out."""
    return [impl for impl in reversed(hook.get_hookimpls()) if not (impl.wrapper or impl.hookwrapper)]


def _call(hook: HookCaller, impl: HookImpl, kwargs: dict[str, Any], check: Optional[Check]) -> Any:
    # pluggy passes only the arguments an implementation names, positionally, in its order.
    result = impl.function(*[kwargs[name] for name in impl.argnames])
    if result is not None and check is not None:
        result = check(result)
    return result


def _failed(hook: HookCaller, impl: HookImpl, exc: BaseException) -> HookFailure:
    failure = HookFailure(hook.name, impl.plugin_name, exc)
    # The traceback helps the plugin's author; a wrong answer is fully said in one line.
    log.warning("%s", failure.describe(), exc_info=None if isinstance(exc, BadAnswer) else exc)
    return failure


def call_collect(hook: HookCaller, *, check: Optional[Check] = None, **kwargs: Any) -> Collected[Any]:
    """Call every implementation (a "collect" hook); keep each answer that is not None."""
    results: list[tuple[str, Any]] = []
    failures: list[HookFailure] = []
    for impl in implementations(hook):
        try:
            value = _call(hook, impl, kwargs, check)
        except Exception as exc:  # noqa: BLE001  (foreign code: any failure is reported, not fatal)
            failures.append(_failed(hook, impl, exc))
            continue
        if value is not None:
            results.append((impl.plugin_name, value))
    return Collected(results, failures)


def call_first(hook: HookCaller, *, check: Optional[Check] = None, **kwargs: Any) -> First[Any]:
    """Call implementations until one answers (a ``firstresult`` hook); a failing one is passed over."""
    failures: list[HookFailure] = []
    for impl in implementations(hook):
        try:
            value = _call(hook, impl, kwargs, check)
        except Exception as exc:  # noqa: BLE001
            failures.append(_failed(hook, impl, exc))
            continue
        if value is not None:
            return First(value, impl.plugin_name, failures)
    return First(None, None, failures)


def call_chain(hook: HookCaller, *, key: str, check: Optional[Check] = None, **kwargs: Any) -> Chained[Any]:
    """Call each implementation in turn with ``kwargs[key]`` set to the previous answer.

    None keeps the value unchanged; a failing implementation leaves it as it was and the next one
    still runs, so every failing plugin is reported at once.
    """
    value = kwargs[key]
    changed_by: list[str] = []
    failures: list[HookFailure] = []
    for impl in implementations(hook):
        try:
            result = _call(hook, impl, {**kwargs, key: value}, check)
        except Exception as exc:  # noqa: BLE001
            failures.append(_failed(hook, impl, exc))
            continue
        if result is not None:
            value = result
            changed_by.append(impl.plugin_name)
    return Chained(value, changed_by, failures)


def expect(kind: type, what: str) -> Check:
    """A check that the answer is a ``kind``."""

    def check(value: Any) -> Any:
        if not isinstance(value, kind):
            raise BadAnswer(f"returned {type(value).__name__} {_short(value)}, not {what}")
        return value

    return check


def expect_list_of(kind: type, what: str) -> Check:
    """A check that the answer is a list (or tuple) of ``kind``; the whole answer is refused otherwise."""

    def check(value: Any) -> Sequence[Any]:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise BadAnswer(f"returned {type(value).__name__} {_short(value)}, not a list of {what}")
        for item in value:
            if not isinstance(item, kind):
                raise BadAnswer(f"returned a list holding {type(item).__name__} {_short(item)}, not {what}")
        return list(value)

    return check


def expect_one_of(choices: Sequence[str]) -> Check:
    """A check that the answer is one of ``choices``."""

    def check(value: Any) -> str:
        if value not in choices:
            raise BadAnswer(f"returned {_short(value)}, not one of {', '.join(map(repr, choices))}")
        return value

    return check


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
