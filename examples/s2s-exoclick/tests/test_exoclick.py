"""s2s-exoclick: the template and the reading of ExoClick's answers, through a plugin manager."""

from __future__ import annotations

import dataclasses

import pluggy
import pytest
import s2s_exoclick

import hookspecs
from hookspecs import PostbackRequest


@dataclasses.dataclass
class Answer:
    status_code: int
    text: str
    headers: dict = dataclasses.field(default_factory=dict)


@pytest.fixture
def pm() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    pm.register(s2s_exoclick, name="exoclick")
    return pm


EXO = PostbackRequest("GET", "https://s.magsrv.com/tag.php?goal=g1&tag=abc&value=2.5", template="exoclick")


@pytest.mark.parametrize(
    ("status", "text", "expected"),
    [
        (200, "OK", "delivered"),
        (200, "OK\n", "delivered"),
        (200, "ERROR: This conversion has already been notified and saved.", "delivered"),
        (200, "ERROR: Tag is invalid!", "failed"),
        (200, "ERROR: Goal is invalid!", "failed"),
        (200, "<html>maintenance</html>", None),
        (503, "ERROR: Tag is invalid!", None),
        (429, "", None),
    ],
)
def test_classify_response_reads_exoclicks_answers(pm, status, text, expected):
    assert pm.hook.classify_response(request=EXO, response=Answer(status, text)) == expected


@pytest.mark.parametrize(
    ("url", "template", "mine"),
    [
        ("https://s.magsrv.com/tag.php?tag=a", None, True),
        ("https://main.exoclick.com/tag.php?tag=a", None, True),
        ("http://127.0.0.1:8080/tag.php?tag=a", "exoclick", True),
        ("https://partner.example/pb?c=a", None, False),
        ("https://magsrv.com.evil.example/tag.php", None, False),
        ("https://partner.example/pb?c=a", "propellerads", False),
    ],
)
def test_classify_response_leaves_other_sources_alone(pm, url, template, mine):
    request = PostbackRequest("GET", url, template=template)
    verdict = pm.hook.classify_response(request=request, response=Answer(200, "ERROR: Tag is invalid!"))
    assert verdict == ("failed" if mine else None)


def test_register_source_templates_gives_the_exoclick_template(pm):
    (batch,) = pm.hook.register_source_templates()
    (template,) = batch
    assert (template.name, template.source_macro, template.click_id_param) == (
        "exoclick",
        "{conversions_tracking}",
        "external_id",
    )
    assert template.postback_url == "https://s.magsrv.com/tag.php?goal=GOAL_ID&tag={external_id}&value={revenue}"
    assert template.statuses == ("sale",) and template.success_body == "OK"
    assert (template.placeholders, template.secrets) == (("GOAL_ID",), ("skey",))


def test_the_plugin_implements_only_hooks_of_the_contract(pm):
    pm.check_pending()
    assert sorted(c.name for c in pm.get_hookcallers(s2s_exoclick)) == [
        "classify_response",
        "register_source_templates",
    ]
