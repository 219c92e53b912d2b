"""State-store tables of the collect domain: sources, the durable ingest journal, rejected messages."""

import sqlalchemy as sa

from accord.storage import BigIntPK, UTCDateTime, metadata

sources = sa.Table(
    "sources",
    metadata,
    sa.Column("id", sa.String(26), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("write_key", sa.String(64), nullable=False, unique=True),
    sa.Column("channel", sa.String(32), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

# Every accepted message, committed before the client gets its 200. The unique key makes
# client retries harmless; the processor reads it in sequence order into the event store.
journal = sa.Table(
    "journal",
    metadata,
    sa.Column("seq", BigIntPK, primary_key=True, autoincrement=True),
    sa.Column("source_id", sa.String(26), nullable=False),
    sa.Column("message_id", sa.String(200), nullable=False),
    sa.Column("received_at", UTCDateTime(), nullable=False),
    sa.Column("payload", sa.LargeBinary(), nullable=False),
    sa.UniqueConstraint("source_id", "message_id"),
)

ingest_rejects = sa.Table(
    "ingest_rejects",
    metadata,
    sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
    sa.Column("source_id", sa.String(26), nullable=True),
    sa.Column("received_at", UTCDateTime(), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("code", sa.String(64), nullable=False),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("payload", sa.Text(), nullable=True),
)
