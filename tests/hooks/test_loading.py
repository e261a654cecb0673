"""Loading third-party plugins from the ``s2s_postback`` entry-point group, safely.

The plugins here are real distributions on ``sys.path`` (see the ``fake_dist`` fixture), found by
``importlib.metadata`` exactly as pip-installed ones are.
"""

from __future__ import annotations

import json
import sys
import warnings

import pluggy
import pytest
from click.testing import CliRunner

import hookspecs
import s2s_plugin
from s2s_plugin.entrypoint import build_plugin_manager
from s2s_plugin.hooks.plugins import PluginLoadWarning, describe_plugins, load_report, make_plugin_manager

GOOD = """
    import hookspecs

    @hookspecs.hookimpl
    def register_source_templates():
        return [hookspecs.SourceTemplate(name="acme", postback_url="https://acme.example/pb?c={external_id}")]

    @hookspecs.hookimpl
    def resolve_macro(name, argument, context):
        return None
"""

MISSPELT = """
    import hookspecs

    @hookspecs.hookimpl
    def clasify_response(request, response):
        return "failed"
"""

WRONG_ARGUMENT = """
    import hookspecs

    @hookspecs.hookimpl
    def prepare_request(request, context, token):
        return None
"""


def names(pm: pluggy.PluginManager) -> set[str]:
    return {name for name, plugin in pm.list_name_plugin() if plugin is not None}


def test_an_installed_plugin_is_loaded_with_its_version_and_hooks(fake_dist):
    fake_dist("acme_s2s", GOOD, dist="acme-s2s", version="2.3.4", entry_name="acme")
    pm = make_plugin_manager()
    assert "acme" in names(pm)
    (info,) = [i for i in describe_plugins(pm) if i.name == "acme"]
    assert (info.distribution, info.version, info.entry_point) == ("acme-s2s", "2.3.4", "acme_s2s")
    assert info.hooks == ("register_source_templates", "resolve_macro")
    assert load_report(pm).skipped == []


def test_a_plugin_that_fails_to_import_is_skipped_with_a_warning_naming_it(fake_dist, standin):
    fake_dist("acme_s2s", GOOD, entry_name="acme")
    fake_dist("broken_s2s", "raise ImportError('needs libfoo >= 2')", dist="broken-s2s", version="0.9")
    with pytest.warns(
        PluginLoadWarning,
        match=r"plugin 'broken_s2s' \(broken-s2s 0.9\) was not loaded: ImportError: needs libfoo >= 2",
    ):
        pm = make_plugin_manager()
    assert "acme" in names(pm) and "broken_s2s" not in names(pm)
    (skipped,) = load_report(pm).skipped
    assert (skipped.name, skipped.distribution, skipped.reason) == (
        "broken_s2s",
        "broken-s2s",
        "ImportError: needs libfoo >= 2",
    )
    # The host is not taken down: the plugin installs and the other plugin's template works.
    service = s2s_plugin.install(pm, database_url="sqlite://", allow_private_targets=True)
    try:
        assert "acme" in service.templates()
    finally:
        service.close()


def test_a_misspelt_hook_fails_loudly_and_the_plugin_is_not_registered(fake_dist):
    fake_dist("typo_s2s", MISSPELT)
    with pytest.warns(
        PluginLoadWarning, match=r"unknown hook 'clasify_response' \(did you mean 'classify_response'\?\)"
    ):
        pm = make_plugin_manager()
    assert "typo_s2s" not in names(pm)
    assert pm.hook.clasify_response.get_hookimpls() == []  # nothing half-registered answers
    pm.check_pending()


def test_an_implementation_with_unknown_arguments_is_skipped(fake_dist):
    fake_dist("args_s2s", WRONG_ARGUMENT)
    with pytest.warns(PluginLoadWarning, match=r"plugin 'args_s2s' .* was not loaded: PluginValidationError"):
        pm = make_plugin_manager()
    assert "args_s2s" not in names(pm)
    assert [i for i in pm.hook.prepare_request.get_hookimpls() if i.plugin_name == "args_s2s"] == []


def test_strict_mode_re_raises_with_the_plugin_named(fake_dist, monkeypatch):
    fake_dist("broken_s2s", "raise ImportError('needs libfoo >= 2')")
    monkeypatch.setenv("S2S_PLUGINS_STRICT", "1")
    with pytest.raises(ImportError, match="needs libfoo") as raised:
        make_plugin_manager()
    assert any("while loading s2s_postback plugin 'broken_s2s'" in note for note in raised.value.__notes__)
    fake_dist("typo_s2s", MISSPELT)
    with pytest.raises(pluggy.PluginValidationError, match="clasify_response"):
        make_plugin_manager(disabled=["broken_s2s"])


@pytest.mark.parametrize("value", ["acme", "ACME-S2S", "other, acme", "*"])
def test_disabled_plugins_are_not_loaded(fake_dist, monkeypatch, value):
    fake_dist("acme_s2s", GOOD, dist="acme-s2s", entry_name="acme")
    monkeypatch.setenv("S2S_DISABLE_PLUGINS", value)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a disabled plugin is a choice, not a warning
        pm = make_plugin_manager()
    assert "acme" not in names(pm)
    (skipped,) = [s for s in load_report(pm).skipped if s.name == "acme"]
    assert skipped.disabled and skipped.reason == "disabled by S2S_DISABLE_PLUGINS"


def test_the_plugins_own_entry_point_is_left_for_install(fake_dist):
    fake_dist("own_copy", "raise AssertionError('must not be imported')", entry_name="s2s_postback")
    pm = make_plugin_manager()
    assert "s2s_postback" not in names(pm) and "own_copy" not in sys.modules
    service = s2s_plugin.install(pm, database_url="sqlite://")
    try:
        assert pm.get_plugin("s2s_postback") is service  # registered, not silently blocked
        assert pm.hook.on_conversion.get_hookimpls()[0].plugin is service
    finally:
        service.close()


def test_builtins_are_registered_after_the_plugins_and_checked(fake_dist):
    class HostLog:
        @hookspecs.hookimpl
        def on_postback_sent(self, attempt):
            pass

    class Typo:
        @hookspecs.hookimpl
        def on_postback_send(self, attempt):
            pass

    fake_dist("acme_s2s", GOOD, entry_name="acme")
    pm = make_plugin_manager(builtins={"host": HostLog()})
    order = [name for name, _ in pm.list_name_plugin()]
    assert order.index("acme") < order.index("host") == len(order) - 1
    with pytest.raises(pluggy.PluginValidationError, match="on_postback_send"):
        make_plugin_manager(builtins={"host": Typo()})  # the host's own bug: loud, always


def test_the_s2s_postback_cli_uses_the_same_loading(fake_dist):
    fake_dist("acme_s2s", GOOD, dist="acme-s2s", version="2.3.4", entry_name="acme")
    fake_dist("broken_s2s", "raise ImportError('needs libfoo')")
    with pytest.warns(PluginLoadWarning):
        assert "acme" in names(build_plugin_manager())
    from s2s_plugin.cli import main

    with pytest.warns(PluginLoadWarning):
        result = CliRunner().invoke(main, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    listing = json.loads(result.output)
    assert [(p["version"], p["hooks"]) for p in listing["plugins"] if p["name"] == "acme"] == [
        ("2.3.4", ["register_source_templates", "resolve_macro"])
    ]
    assert [p["name"] for p in listing["skipped"]] == ["broken_s2s"]
    with pytest.warns(PluginLoadWarning):
        templates = CliRunner().invoke(main, ["templates", "show", "acme"])
    assert "postback URL:  GET https://acme.example/pb?c={external_id}" in templates.output


def test_strict_mode_stops_both_command_lines_with_one_line(fake_dist, monkeypatch, tmp_path):
    from click.testing import CliRunner

    from s2s_plugin.cli import main as s2s_postback
    from sample_host.cli import main as sample_host

    fake_dist("broken_s2s", "raise ImportError('needs libfoo >= 2')")
    monkeypatch.setenv("S2S_PLUGINS_STRICT", "1")
    for command, args in (
        (sample_host, ["--db", f"sqlite:///{tmp_path}/host.db", "plugins"]),
        (s2s_postback, ["plugins"]),
    ):
        result = CliRunner().invoke(command, args)
        assert result.exit_code in (1, 2), (result.exit_code, result.output)
        assert isinstance(result.exception, SystemExit), result.exception  # not a traceback
        lines = [line for line in result.output.splitlines() if "needs libfoo" in line]
        assert (
            len(lines) == 1
            and "ImportError: needs libfoo >= 2 (while loading s2s_postback plugin 'broken_s2s'" in lines[0]
        )
