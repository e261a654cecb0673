"""Calling the extension hooks through pluggy, so one plugin's bug stays its own.

``pm.hook.NAME(...)`` stops at the first exception and loses every other plugin's answer. The
plugin still calls every extension hook through pluggy (``hook(**kwargs)``), so whatever a host
or a third party installed around pluggy sees each call: hook wrappers (``wrapper=True`` and old
``hookwrapper=True``), ``pm.trace`` and ``pm.add_hookcall_monitoring``. What differs is that each
implementation runs inside a guard, put on its ``HookImpl`` the first time the plugin calls the
hook: while one of these helpers is calling, an exception or a wrong return value is caught,
becomes a ``HookFailure`` naming the plugin, and counts as "no answer" (None), so pluggy goes on
to the next implementation in its order (last registered first, ``tryfirst``/``trylast``
honoured). Outside these helpers (a host calling ``pm.hook.classify_response`` itself) the guard
does nothing: exceptions reach the caller as pluggy would let them.

A chain (``prepare_request``: each implementation gets the request the previous one returned) is
one pluggy call too: the guard hands each implementation the chain's value so far. What a failure
means for a postback is decided by the caller (see docs/hooks.md, "When a plugin fails").
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import logging
from collections.abc import Callable, Sequence
from typing import Any, Generic, Optional, TypeVar

from pluggy import HookCaller, HookImpl

log = logging.getLogger("s2s_postback.plugins")

T = TypeVar("T")

#: ``check(value) -> value``: validates (and may normalise) an implementation's return value;
#: raises ``BadAnswer`` with a sentence saying what was wrong.
Check = Callable[[Any], Any]


class BadAnswer(TypeError):
    """An implementation returned something its hook does not accept."""


@dataclasses.dataclass(frozen=True)
class HookFailure:
    """One implementation of one hook that raised or returned something unusable."""

    hook: str
    plugin: str
    error: BaseException

    def describe(self) -> str:
        """One sentence for an attempt's reason, an event or a warning. Only people read it: what
        a failure caused is stored as the ``plugin_failed`` cause code beside the sentence."""
        message = str(self.error).strip().splitlines()[0] if str(self.error).strip() else ""
        if isinstance(self.error, BadAnswer):
            detail = f"it {message}"
        else:
            detail = f"{type(self.error).__name__}: {message}" if message else type(self.error).__name__
        return f"plugin {self.plugin!r} failed in {self.hook}: {detail}"


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


@dataclasses.dataclass
class _Call:
    """One guarded call of one hook, as the guards of its implementations see it."""

    hook: str
    check: Optional[Check]
    answers: list[tuple[str, Any]] = dataclasses.field(default_factory=list)
    failures: list[HookFailure] = dataclasses.field(default_factory=list)
    #: For a chain: the argument that carries the value, and the value so far.
    chain_key: Optional[str] = None
    chain_value: Any = None


#: The guarded call in progress in this thread (or task), if any.
_current: contextvars.ContextVar[Optional[_Call]] = contextvars.ContextVar("s2s_hook_call", default=None)

#: Set on a guard, so an implementation is guarded once however often its hook is called.
_GUARDED = "__s2s_guarded__"


def _guard(hook_name: str, impl: HookImpl) -> Callable[..., Any]:
    """``impl.function`` inside a guard: see the module docstring."""
    function, argnames, plugin = impl.function, tuple(impl.argnames), impl.plugin_name

    @functools.wraps(function)
    def guarded(*args: Any) -> Any:
        call = _current.get()
        if call is None or call.hook != hook_name:
            return function(*args)  # not our call: pluggy's own behaviour
        if call.chain_key is not None and call.chain_key in argnames:
            args = tuple(call.chain_value if name == call.chain_key else arg for name, arg in zip(argnames, args))
        try:
            result = function(*args)
            if result is not None and call.check is not None:
                result = call.check(result)
        except Exception as exc:
            call.failures.append(_failed(hook_name, plugin, exc))
            return None
        if result is not None:
            call.answers.append((plugin, result))
            if call.chain_key is not None:
                call.chain_value = result
        return result

    setattr(guarded, _GUARDED, True)
    return guarded


def _guard_all(hook: HookCaller) -> None:
    """Guard every implementation of ``hook`` not guarded yet (plugins may register at any time)."""
    for impl in hook.get_hookimpls():
        if not (impl.wrapper or impl.hookwrapper) and not getattr(impl.function, _GUARDED, False):
            # pluggy types HookImpl.function as final; replacing it is how the guard stays inside pluggy's call.
            impl.function = _guard(hook.name, impl)  # type: ignore[misc]


def _run(hook: HookCaller, call: _Call, kwargs: dict[str, Any]) -> _Call:
    """Call ``hook`` through pluggy with ``call`` as the guards' context."""
    _guard_all(hook)
    token = _current.set(call)
    try:
        hook(**kwargs)
    except Exception as exc:
        wrappers = [impl.plugin_name for impl in hook.get_hookimpls() if impl.wrapper or impl.hookwrapper]
        call.failures.append(_failed(hook.name, ", ".join(wrappers) or "a hook wrapper", exc))
    finally:
        _current.reset(token)
    return call


def _failed(hook: str, plugin: str, exc: BaseException) -> HookFailure:
    failure = HookFailure(hook, plugin, exc)
    # The traceback helps the plugin's author; a wrong answer is fully said in one line.
    log.warning("%s", failure.describe(), exc_info=None if isinstance(exc, BadAnswer) else exc)
    return failure


def call_collect(hook: HookCaller, *, check: Optional[Check] = None, **kwargs: Any) -> Collected[Any]:
    """Call every implementation (a "collect" hook); keep each answer that is not None."""
    call = _run(hook, _Call(hook.name, check), kwargs)
    return Collected(call.answers, call.failures)


def call_first(hook: HookCaller, *, check: Optional[Check] = None, **kwargs: Any) -> First[Any]:
    """Call implementations until one answers (a ``firstresult`` hook); a failing one is passed over."""
    call = _run(hook, _Call(hook.name, check), kwargs)
    if call.answers:
        plugin, value = call.answers[0]
        return First(value, plugin, call.failures)
    return First(None, None, call.failures)


def call_chain(hook: HookCaller, *, key: str, check: Optional[Check] = None, **kwargs: Any) -> Chained[Any]:
    """Call each implementation in turn with ``kwargs[key]`` set to the previous answer.

    None keeps the value unchanged; a failing implementation leaves it as it was and the next one
    still runs, so every failing plugin is reported at once.
    """
    call = _run(hook, _Call(hook.name, check, chain_key=key, chain_value=kwargs[key]), kwargs)
    return Chained(call.chain_value, [plugin for plugin, _ in call.answers], call.failures)


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
        return str(value)

    return check


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
