"""State-store tables of the users domain: accounts and login sessions."""

import sqlalchemy as sa

from accord.storage import UTCDateTime, metadata

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.String(26), primary_key=True),
    sa.Column("email", sa.String(320), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(200), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("store_id", sa.String(64), nullable=True),
    sa.Column("locale", sa.String(16), nullable=True),
    sa.Column("active", sa.Boolean(), nullable=False, default=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

# A login session: the cookie holds a random token, the table only its SHA-256, so a leaked table opens nothing.
# The CSRF token is bound to the session (synchronizer token pattern).
user_sessions = sa.Table(
    "user_sessions",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(26), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=False),
)
