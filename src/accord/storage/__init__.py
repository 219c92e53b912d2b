"""Storage: the state store (SQLAlchemy + Alembic) and the event store protocol with its backends."""

from accord.storage.state import (
    BigIntPK,
    UTCDateTime,
    WriteTurn,
    create_state_engine,
    metadata,
    migrate,
    new_id,
    sync_state,
    utcnow,
)

__all__ = [
    "BigIntPK",
    "UTCDateTime",
    "WriteTurn",
    "create_state_engine",
    "metadata",
    "migrate",
    "new_id",
    "sync_state",
    "utcnow",
]
