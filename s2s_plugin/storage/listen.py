"""Wake-ups from PostgreSQL: ``LISTEN`` on the queue's channel so idle workers start at once.

``on_conversion`` (and resend) send ``NOTIFY`` in the transaction that queues the work; every
listening worker wakes within milliseconds of the commit. The dispatcher's short poll stays as the
backstop: a lost connection, a notification sent while reconnecting, a retry falling due.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Optional

from sqlalchemy import Engine

from s2s_plugin.storage.queue import CHANNEL

log = logging.getLogger("s2s_postback.delivery")


class Listener:
    """A daemon thread holding one ``LISTEN`` connection; calls ``on_notify()`` per notification."""

    def __init__(self, engine: Engine, on_notify: Callable[[], None], reconnect_after: float = 1.0) -> None:
        self._url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._on_notify = on_notify
        self._reconnect_after = reconnect_after
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.listening = threading.Event()

    def start(self) -> None:
        """Start listening in the background."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="s2s-listen", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop listening (within about a quarter of a second)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def _run(self) -> None:
        import psycopg

        while not self._stop.is_set():
            conn: Any = None
            try:
                conn = psycopg.connect(self._url, autocommit=True, connect_timeout=10)
                conn.execute(f"LISTEN {CHANNEL}")
                self.listening.set()
                self._on_notify()  # whatever was queued while not listening
                while not self._stop.is_set():
                    for _ in conn.notifies(timeout=0.25, stop_after=1):
                        self._on_notify()
            except Exception as exc:  # the poll keeps delivering meanwhile: note it and reconnect
                self.listening.clear()
                log.warning("LISTEN %s lost (%s); reconnecting", CHANNEL, exc)
                self._stop.wait(self._reconnect_after)
            finally:
                if conn is not None:
                    try:
                        conn.close()
                    except Exception:
                        pass
