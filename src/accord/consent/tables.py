"""State-store tables of the consent domain: one current consent per identifier, purpose and channel."""

import sqlalchemy as sa

from accord.storage import UTCDateTime, metadata

# Consent attaches to the identifier it was given for (an email address, a phone number, a push token, a user id),
# so it follows the person through merges and exists before the identifier's profile does.
consents = sa.Table(
    "consents",
    metadata,
    sa.Column("identifier_key", sa.String(400), primary_key=True),
    sa.Column("purpose", sa.String(64), primary_key=True),
    sa.Column("channel", sa.String(32), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("source", sa.String(200), nullable=False),
    sa.Column("legal_basis", sa.String(64), nullable=True),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=True),
)

# Audit of data-subject requests (export, erase): who asked, when, for which (hashed) identifier, what was done.
privacy_requests = sa.Table(
    "privacy_requests",
    metadata,
    sa.Column("id", sa.String(26), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("identifier_hash", sa.String(64), nullable=False, index=True),
    sa.Column("identifier_type", sa.String(64), nullable=False),
    sa.Column("requested_by", sa.String(200), nullable=False),
    sa.Column("requested_at", UTCDateTime(), nullable=False),
    sa.Column("completed_at", UTCDateTime(), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("summary", sa.Text(), nullable=False),  # JSON: what was deleted or anonymised, by store
)
