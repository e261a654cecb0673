"""Worker processes for the fault tests: start ``s2s-postback worker``, queue many postbacks, count."""

from __future__ import annotations

import collections
import signal
import subprocess
import time
from typing import Any, Optional

import pluggy
from sqlalchemy import func, select

import hookspecs
import s2s_plugin
from s2s_plugin.storage import tables as t

from .conftest import ROOT, cli, click, convert, process_env


class Worker:
    """One ``s2s-postback worker`` process on ``database_url``."""

    def __init__(self, database_url: str, *options: str) -> None:
        self.database_url = database_url
        self.options = options
        self.process: Optional[subprocess.Popen] = None

    def start(self) -> Worker:
        self.process = subprocess.Popen(
            cli("worker", "--database-url", self.database_url, "--allow-private-targets", *self.options),
            cwd=ROOT,
            env=process_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        return self

    def kill(self) -> None:
        """SIGKILL: no chance to finish, record or release anything."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def terminate(self, timeout: float = 20) -> int:
        """SIGTERM and wait; the exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stderr(self) -> str:
        assert self.process is not None and self.process.poll() is not None
        return self.process.stderr.read() if self.process.stderr else ""


def queue_postbacks(database_url: str, target: str, count: int) -> None:
    """Install the plugin on ``database_url`` and queue ``count`` postbacks to ``target``."""
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    s2s = s2s_plugin.install(pm, database_url=database_url, allow_private_targets=True)
    try:
        s2s.add_source("exo", postback_url=target + "/pb?c={external_id}", statuses=["sale"])
        for n in range(count):
            pm.hook.on_click(click=click(f"s{n}", f"C{n}"))
            convert(pm, f"s{n}")
    finally:
        s2s.close()


def states(engine: Any) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(conn.execute(select(t.deliveries.c.state, func.count()).group_by(t.deliveries.c.state)).all())


def wait_until(predicate: Any, timeout: float, what: str, step: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)


def received(source: Any) -> collections.Counter:
    """How many times each click id reached the source."""
    return collections.Counter(r.params["c"] for r in source.requests)
