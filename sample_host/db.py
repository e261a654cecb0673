"""The sample host's own tables: campaigns, clicks, conversions, both postback logs and settings.

The postback plugin keeps its tables (prefixed ``s2s_``) in the same database; these are the
tracker's own records, which it would keep with or without the plugin.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Optional

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from .errors import HostError

metadata = sa.MetaData()


def utcnow() -> dt.datetime:
    """The current time as an aware UTC datetime."""
    return dt.datetime.now(dt.UTC)


class UtcDateTime(sa.types.TypeDecorator):
    """A datetime stored as UTC and always read back aware.

    SQLite drops the time zone, so values are normalised to UTC on the way in and marked UTC on the
    way out; PostgreSQL keeps them as ``timestamptz``.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Optional[dt.datetime], dialect: Any) -> Optional[dt.datetime]:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        value = value.astimezone(dt.UTC)
        if dialect.name == "sqlite":
            value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Optional[dt.datetime], dialect: Any) -> Optional[dt.datetime]:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


campaigns = sa.Table(
    "campaigns",
    metadata,
    sa.Column("alias", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("source_id", sa.String(64), nullable=True),
    sa.Column("offer_url", sa.Text, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False, default=utcnow),
)

clicks = sa.Table(
    "clicks",
    metadata,
    sa.Column("subid", sa.String(32), primary_key=True),
    sa.Column("campaign", sa.String(64), nullable=False, index=True),
    sa.Column("source", sa.String(64), nullable=True),
    sa.Column("params", sa.JSON, nullable=False, default=dict),
    sa.Column("ip", sa.String(64), nullable=True),
    sa.Column("ua", sa.Text, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False, default=utcnow),
)

conversions = sa.Table(
    "conversions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("subid", sa.String(32), nullable=False, index=True),
    sa.Column("tid", sa.String(200), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("original_status", sa.String(100), nullable=True),
    sa.Column("payout", sa.String(40), nullable=True),  # text keeps the Decimal exact on every backend
    sa.Column("currency", sa.String(3), nullable=True),
    sa.Column("params", sa.JSON, nullable=False, default=dict),
    sa.Column("created_at", UtcDateTime, nullable=False, default=utcnow),
    # When the network says the conversion happened (its conversion_time parameter), if it said;
    # created_at stays the time the tracker received it.
    sa.Column("converted_at", UtcDateTime, nullable=True),
    # The same click, status and tid (an affiliate network retrying its postback) is one
    # conversion: see receiving.repeat_key. Empty for conversions recorded before it existed.
    sa.Column("repeat_key", sa.String(64), nullable=True),
    sa.Index("uq_conversions_repeat_key", "repeat_key", unique=True),
)

received_postbacks = sa.Table(
    "received_postbacks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("received_at", UtcDateTime, nullable=False, default=utcnow, index=True),
    sa.Column("method", sa.String(8), nullable=False),
    sa.Column("subid", sa.String(200), nullable=True, index=True),
    sa.Column("status", sa.String(100), nullable=True),
    sa.Column("params", sa.JSON, nullable=False, default=dict),
    sa.Column("ip", sa.String(64), nullable=True),
    # accepted | ignored | rejected | error
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("http_status", sa.Integer, nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("conversion_id", sa.Integer, nullable=True),
)

sent_postbacks = sa.Table(
    "sent_postbacks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("logged_at", UtcDateTime, nullable=False, default=utcnow, index=True),
    sa.Column("delivery_id", sa.Integer, nullable=False, index=True),
    sa.Column("subid", sa.String(200), nullable=False, index=True),
    sa.Column("tid", sa.String(200), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("source_id", sa.String(64), nullable=True, index=True),
    sa.Column("campaign_id", sa.String(64), nullable=True),
    sa.Column("rule_id", sa.String(100), nullable=False),
    sa.Column("method", sa.String(8), nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=True),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False, index=True),
    sa.Column("http_status", sa.Integer, nullable=True),
    sa.Column("response_body", sa.Text, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("reason", sa.Text, nullable=True),
    # The reason's code (the plugin's cause codes, e.g. status_not_enabled, timeout): filters and
    # metrics group by it. Empty for entries logged before the plugin reported codes.
    sa.Column("cause", sa.String(40), nullable=True, index=True),
    sa.Column("duration_ms", sa.Float, nullable=True),
    sa.Column("started_at", UtcDateTime, nullable=True),
    sa.Column("next_attempt_at", UtcDateTime, nullable=True),
    sa.Column("response_truncated", sa.Boolean, nullable=False, default=False),
)

# Conversions recorded by the host but not yet taken by the postback plugin (its on_conversion
# failed): the host hands them over again, oldest first, until the plugin takes them.
handoffs = sa.Table(
    "conversion_handoffs",
    metadata,
    sa.Column("conversion_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("subid", sa.String(32), nullable=False, index=True),
    sa.Column("created_at", UtcDateTime, nullable=False, default=utcnow),
    sa.Column("tries", sa.Integer, nullable=False, default=0),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("last_tried_at", UtcDateTime, nullable=True),
    # When a failed hand-over is due again (None: due now); the recovery run goes past the others.
    sa.Column("next_try_at", UtcDateTime, nullable=True),
)

# Inbound postbacks refused before their parameters were read (wrong key, address not allowed),
# counted per kind and address instead of stored one by one: probes must not fill the database.
refused_requests = sa.Table(
    "refused_requests",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("ip", sa.String(64), nullable=False),
    sa.Column("count", sa.Integer, nullable=False, default=1),
    sa.Column("first_at", UtcDateTime, nullable=False, default=utcnow),
    sa.Column("last_at", UtcDateTime, nullable=False, default=utcnow),
    sa.UniqueConstraint("kind", "ip", name="uq_refused_requests_kind_ip"),
)

# Admin sessions: the cookie carries a random token, this table its SHA-256 and when the session
# ends (a fixed time after sign-in). Signing out deletes the row, so a copied cookie stops working.
admin_sessions = sa.Table(
    "admin_sessions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("signed_in_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False, index=True),
)

settings = sa.Table(
    "settings",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)


def check_lengths(table: sa.Table, values: dict[str, Any], shown: Optional[dict[str, str]] = None) -> None:
    """Refuse text longer than its column before it is written.

    SQLite stores any length; PostgreSQL refuses the whole statement. Checking first makes both
    answer the same: a one-line 400 naming the value, not a database error.

    :param shown: the name a value has for the user, where it differs from its column's.
    :raises HostError: naming the first value that does not fit.
    """
    for name, value in values.items():
        length = getattr(table.c[name].type, "length", None) if name in table.c else None
        if length and isinstance(value, str) and len(value) > length:
            raise HostError(f"{(shown or {}).get(name, name)} is {len(value)} characters long: at most {length} fit")


def make_engine(database_url: str) -> Engine:
    """An engine for the host's database; SQLite waits for locks instead of failing at once.

    The delivery dispatcher writes the Sent postbacks log from its own thread while the web app
    records clicks, so SQLite runs in WAL mode with a busy timeout.
    """
    url = sa.engine.make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return sa.create_engine(url, pool_pre_ping=True)
    engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @sa.event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        if url.database and url.database != ":memory:":
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    return engine


def create_tables(engine: Engine) -> None:
    """Create the host's tables that do not exist yet, and bring older ones up to date (existing
    data is kept): columns added since are added empty, indexes added since are created."""
    metadata.create_all(engine)
    _add_new_columns(engine)
    for table in metadata.sorted_tables:
        for index in table.indexes:
            index.create(engine, checkfirst=True)


def _add_new_columns(engine: Engine) -> None:
    """``ALTER TABLE ... ADD COLUMN`` for every column a database made by an older version lacks.

    New columns must be nullable, so the rows already there stay valid.
    """
    inspector = sa.inspect(engine)
    missing = []
    for table in metadata.sorted_tables:
        present = {column["name"] for column in inspector.get_columns(table.name)}
        missing += [(table, column) for column in table.columns if column.name not in present]
    if not missing:
        return
    preparer = engine.dialect.identifier_preparer
    with engine.begin() as conn:
        for table, column in missing:
            if not column.nullable:
                raise RuntimeError(
                    f"new column {table.name}.{column.name} must be nullable to be added to older databases"
                )
            conn.execute(
                sa.text(
                    f"ALTER TABLE {preparer.format_table(table)} ADD COLUMN {preparer.format_column(column)} "
                    f"{column.type.compile(dialect=engine.dialect)}"
                )
            )
