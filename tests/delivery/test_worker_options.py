"""Every delivery setting is an option of ``s2s-postback worker``, and reaches the service."""

from __future__ import annotations

import dataclasses

import pytest
from click.testing import CliRunner

from s2s_plugin.cli import main
from s2s_plugin.cli import worker as worker_module
from s2s_plugin.settings import DeliverySettings


def test_every_delivery_setting_is_a_worker_option_with_its_variable():
    out = CliRunner().invoke(main, ["worker", "--help"], terminal_width=200).output
    for field in dataclasses.fields(DeliverySettings):
        flag = "--" + field.name.replace("_", "-")
        assert flag in out, flag
        assert f"S2S_{field.name.upper()}" in out


class Opened(Exception):
    pass


def test_worker_options_reach_the_service_typed(monkeypatch: pytest.MonkeyPatch, tmp_path):
    seen: dict = {}

    def open_service(database_url, **settings):
        seen.update(settings, database_url=database_url)
        raise Opened

    monkeypatch.setattr(worker_module, "open_service", open_service)
    result = CliRunner().invoke(
        main,
        [
            "worker",
            "--database-url",
            f"sqlite:///{tmp_path}/w.db",
            "--retry-schedule",
            "0,5",
            "--jitter",
            "0.5",
            "--claim-batch",
            "7",
            "--retry-after-cap",
            "60",
            "--allow-private-targets",
            "--idempotency-header",
            "X-Id",
        ],
    )
    assert isinstance(result.exception, Opened)
    assert seen["retry_schedule"] == [0.0, 5.0] and seen["jitter"] == 0.5 and seen["claim_batch"] == 7
    assert (
        seen["retry_after_cap"] == 60.0
        and seen["allow_private_targets"] is True
        and seen["idempotency_header"] == "X-Id"
    )
    # Settings not given are left to S2S_* variables and the defaults.
    assert seen["timeout"] is None and seen["max_concurrency"] is None


def test_a_bad_option_value_is_one_line_not_a_traceback():
    result = CliRunner().invoke(main, ["worker", "--claim-batch", "many"])
    assert result.exit_code == 2 and "'many' is not a valid integer" in result.output
    assert "Traceback" not in result.output
