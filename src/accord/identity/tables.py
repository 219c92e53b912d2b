"""State-store tables of the identity graph: profiles, identifiers, links, merges, conflicts, changes."""

import sqlalchemy as sa

from accord.storage import BigIntPK, UTCDateTime, metadata

profiles = sa.Table(
    "profiles",
    metadata,
    sa.Column("id", sa.String(26), primary_key=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("merged_into", sa.String(26), nullable=True),
    sa.Column("conflicted", sa.Boolean(), nullable=False, server_default=sa.false()),
)

# One row per known identifier ("type:value", normalised) and the profile it belongs to now.
identifiers = sa.Table(
    "identifiers",
    metadata,
    sa.Column("key", sa.String(400), primary_key=True),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("value", sa.String(320), nullable=False),
    sa.Column("profile_id", sa.String(26), nullable=False, index=True),
    sa.Column("first_seen_at", UTCDateTime(), nullable=False),
)

# Every distinct set of two or more identifiers seen together, with its earliest (time, message) key:
# the evidence from which the grouping is (re)computed in a way that does not depend on arrival order.
identity_links = sa.Table(
    "identity_links",
    metadata,
    sa.Column("link_key", sa.String(64), primary_key=True),
    sa.Column("identifiers", sa.Text(), nullable=False),
    sa.Column("first_at", UTCDateTime(), nullable=False),
    sa.Column("first_message_id", sa.String(200), nullable=False),
    sa.Column("severed", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("rejected", sa.Boolean(), nullable=False, server_default=sa.false()),
)

identity_link_members = sa.Table(
    "identity_link_members",
    metadata,
    sa.Column("identifier_key", sa.String(400), primary_key=True),
    sa.Column("link_key", sa.String(64), primary_key=True),
)

identity_merges = sa.Table(
    "identity_merges",
    metadata,
    sa.Column("id", sa.String(26), primary_key=True),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("from_profile", sa.String(26), nullable=False, index=True),
    sa.Column("into_profile", sa.String(26), nullable=False, index=True),
    sa.Column("identifiers", sa.Text(), nullable=False),
    sa.Column("message_id", sa.String(200), nullable=True),
    sa.Column("source_id", sa.String(26), nullable=True),
    sa.Column("reason", sa.Text(), nullable=False),
)

identity_conflicts = sa.Table(
    "identity_conflicts",
    metadata,
    sa.Column("id", sa.String(26), primary_key=True),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("identifier_key", sa.String(400), nullable=False, index=True),
    sa.Column("profile_ids", sa.Text(), nullable=False),
    sa.Column("message_id", sa.String(200), nullable=True),
    sa.Column("detail", sa.Text(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default="open"),
)

# Outbox of identifier -> profile reassignments, applied in order to the event store's profile column.
identity_changes = sa.Table(
    "identity_changes",
    metadata,
    sa.Column("seq", BigIntPK, primary_key=True, autoincrement=True),
    sa.Column("identifier_key", sa.String(400), nullable=False),
    sa.Column("profile_id", sa.String(26), nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
)

# Probabilistic matching (see accord.identity.matching): each run, its trained model and how far it read.
identity_match_runs = sa.Table(
    "identity_match_runs",
    metadata,
    sa.Column("id", sa.String(26), primary_key=True),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("mode", sa.String(16), nullable=False),
    sa.Column("event_seq", sa.BigInteger(), nullable=False),
    sa.Column("records", sa.Integer(), nullable=False),
    sa.Column("pairs", sa.Integer(), nullable=False),
    sa.Column("merged", sa.Integer(), nullable=False),
    sa.Column("queued", sa.Integer(), nullable=False),
    sa.Column("refused", sa.Integer(), nullable=False),
    sa.Column("merge_above", sa.Float(), nullable=False),
    sa.Column("review_above", sa.Float(), nullable=False),
    sa.Column("seconds", sa.Float(), nullable=False),
    sa.Column("model", sa.Text(), nullable=False),
)

# Pairs of profiles that may be one person, waiting for a person to accept (merge) or reject (keep apart).
# pair_key is the two anchor identifiers, sorted: a decided pair is never queued or merged automatically again.
identity_reviews = sa.Table(
    "identity_reviews",
    metadata,
    sa.Column("id", sa.String(26), primary_key=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("run_id", sa.String(26), nullable=False),
    sa.Column("pair_key", sa.String(64), nullable=False, unique=True),
    sa.Column("identifier_a", sa.String(400), nullable=False),
    sa.Column("identifier_b", sa.String(400), nullable=False),
    sa.Column("profile_a", sa.String(26), nullable=False),
    sa.Column("profile_b", sa.String(26), nullable=False),
    sa.Column("score", sa.Float(), nullable=False),
    sa.Column("agreeing", sa.Text(), nullable=False),
    sa.Column("records", sa.Text(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default="open", index=True),
    sa.Column("decided_at", UTCDateTime(), nullable=True),
    sa.Column("note", sa.Text(), nullable=True),
)

# Identifiers of erased people (data-subject erasure), as SHA-256 of the normalised 'type:value' key: the intake
# drops any later message carrying one, so a re-import or a new event does not bring the person back.
erased_identifiers = sa.Table(
    "erased_identifiers",
    metadata,
    sa.Column("seq", BigIntPK, primary_key=True, autoincrement=True),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("id_type", sa.String(64), nullable=False),
    sa.Column("request_id", sa.String(26), nullable=False),
    sa.Column("erased_at", UTCDateTime(), nullable=False),
)
