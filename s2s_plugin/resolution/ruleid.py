"""Postback rule ids: ``source:ID`` (a traffic source's postback) and ``postback:N`` (a campaign's).

A rule id is part of the key that stops a postback firing twice, it names the rule in the log, and
operators type it (``test-send source:exo``). ``RuleId.parse`` is the one place such text is read.
Rules from ``postback_rules`` hooks have ids of their plugin's own making: kind ``other``.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from s2s_plugin.errors import ConfigError

Kind = Literal["source", "postback", "other"]


@dataclasses.dataclass(frozen=True)
class RuleId:
    """A parsed rule id; ``str()`` gives its text form back."""

    kind: Kind
    key: str

    @classmethod
    def parse(cls, text: str | RuleId) -> RuleId:
        """``"source:exo"`` → ``RuleId("source", "exo")``; ``"postback:3"`` → ``RuleId("postback", "3")``;
        anything else is kind ``other`` with the whole text as its key."""
        if isinstance(text, RuleId):
            return text
        kind, sep, key = str(text).partition(":")
        if sep and kind in ("source", "postback") and key:
            return cls(kind, key)  # type: ignore[arg-type]
        return cls("other", str(text))

    @classmethod
    def of_source(cls, source_id: str) -> RuleId:
        """The id of a traffic source's postback."""
        return cls("source", source_id)

    @classmethod
    def of_postback(cls, postback_pk: int) -> RuleId:
        """The id of a campaign's postback by its row id."""
        return cls("postback", str(postback_pk))

    @classmethod
    def campaign_postback(cls, text: str | int) -> RuleId:
        """A campaign postback's id from ``postback:N`` or a bare ``N`` (as operators type it).

        :raises ConfigError: when it is neither.
        """
        rule = cls.parse(f"postback:{text}" if str(text).isdigit() else str(text))
        if rule.kind != "postback" or not rule.key.isdigit():
            raise ConfigError(f"{str(text)!r} is not a campaign postback id (postback:N)")
        return rule

    @property
    def postback_pk(self) -> int:
        """A campaign postback's row id.

        :raises ConfigError: for any other kind of rule.
        """
        if self.kind != "postback" or not self.key.isdigit():
            raise ConfigError(f"{str(self)!r} is not a campaign postback id (postback:N)")
        return int(self.key)

    def __str__(self) -> str:
        return self.key if self.kind == "other" else f"{self.kind}:{self.key}"
