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

# Every accepted request body, committed before the client gets its 200: the body as received (decompressed)
# and which of its messages were accepted (index and message id). The processor reads it in sequence order.
journal = sa.Table(
    "journal",
    metadata,
    sa.Column("seq", BigIntPK, primary_key=True, autoincrement=True),
    sa.Column("source_id", sa.String(26), nullable=False),
    sa.Column("received_at", UTCDateTime(), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("body", sa.LargeBinary(), nullable=False),
    sa.Column("items", sa.Text(), nullable=False),
    sa.Column("n_items", sa.Integer(), nullable=False),
    sa.Index("ix_journal_seq_n_items", "seq", "n_items"),  # slice sizes without reading the bodies (migration web3)
)

# Message ids loaded per source, with the journal entry that loaded each (kept at least 30 days): the processor
# claims ids here before loading, so client retries never double-count, and a replay of the same journal entry
# after a crash still loads its own messages.
message_ids = sa.Table(
    "message_ids",
    metadata,
    sa.Column("source_id", sa.String(26), primary_key=True),
    sa.Column("message_id", sa.String(200), primary_key=True),
    sa.Column("seq", sa.BigInteger(), nullable=False),
    sa.Column("received_at", UTCDateTime(), nullable=False, index=True),
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
