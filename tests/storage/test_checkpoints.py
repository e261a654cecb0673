"""WAL checkpoints run in their own thread: conversions' commits do not copy the WAL back."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from hookspecs import Click, Conversion
from s2s_plugin.storage import checkpoints
from s2s_plugin.storage import tables as t


def test_the_checkpoint_thread_copies_the_wal_back_while_commits_leave_it(tmp_path: Any, make_s2s: Any) -> None:
    pm, service = make_s2s(f"sqlite:///{tmp_path}/s2s.db")
    service.add_source("exo", postback_url="https://pb.example.net/?c={external_id}", statuses=["sale"])
    for n in range(3 * checkpoints.COMMITS_PER_CHECKPOINT):
        pm.hook.on_click(
            click=Click(subid=f"s{n}", campaign_id="summer", source_id="exo", params={"external_id": f"X{n}"})
        )
        pm.hook.on_conversion(conversion=Conversion(subid=f"s{n}", status="sale", payout=Decimal("1")))
    writer = service.database.writer
    assert writer is not None and writer.checkpointer is not None
    # The committing connection would checkpoint only far beyond what these commits wrote.
    connection = writer.connection()
    assert connection.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == checkpoints.SAFETY_LIMIT_PAGES
    deadline = time.monotonic() + 10
    while writer.checkpointer.runs == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert writer.checkpointer.runs >= 1
    busy, wal_frames, copied = writer.checkpointer.last_result  # type: ignore[misc]
    assert busy == 0 and copied > 0
    with service.engine.connect() as conn:
        assert len(conn.execute(t.deliveries.select()).all()) == 3 * checkpoints.COMMITS_PER_CHECKPOINT
    thread = writer.checkpointer
    service.close()  # closing the database ends the thread
    assert not thread.alive


def test_a_quiet_database_is_not_checkpointed_again_and_again(tmp_path: Any, make_s2s: Any) -> None:
    pm, service = make_s2s(f"sqlite:///{tmp_path}/s2s.db")
    pm.hook.on_click(click=Click(subid="s1", campaign_id="summer", params={}))
    writer = service.database.writer
    assert writer is not None and writer.checkpointer is not None
    time.sleep(3 * checkpoints.IDLE_WAIT)
    runs = writer.checkpointer.runs
    assert runs <= 1  # the one commit, then nothing to do
    time.sleep(3 * checkpoints.IDLE_WAIT)
    assert writer.checkpointer.runs == runs
