"""State-store tables of the journeys domain: versioned definitions, instances, transitions, actions, cursors."""

import sqlalchemy as sa

from accord.storage import BigIntPK, UTCDateTime, metadata

# One row per version of a journey; editing a journey adds a version, running instances stay on theirs.
journeys = sa.Table(
    "journeys",
    metadata,
    sa.Column("id", sa.String(26), primary_key=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("definition", sa.Text(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # draft | active | paused | stopped (latest version only)
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("name", "version"),
)

# One row per entry of a profile into a journey version: where it stands and when it is next due.
journey_instances = sa.Table(
    "journey_instances",
    metadata,
    sa.Column("id", sa.String(26), primary_key=True),
    sa.Column("journey_id", sa.String(26), nullable=False, index=True),
    sa.Column("journey_name", sa.String(100), nullable=False),
    sa.Column("profile_id", sa.String(26), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # active | completed | exited
    sa.Column("step_id", sa.String(100), nullable=True),  # the step to run when due (None once finished)
    sa.Column("due_at", UTCDateTime(), nullable=True),
    sa.Column("waiting_for", sa.String(200), nullable=True),  # event name a wait_until step listens for
    sa.Column("holdout", sa.Boolean(), nullable=False),
    sa.Column("entered_at", UTCDateTime(), nullable=False),
    sa.Column("ended_at", UTCDateTime(), nullable=True),
    sa.Column("exit_reason", sa.String(200), nullable=True),
    sa.Column("converted_at", UTCDateTime(), nullable=True),
    sa.Column("entry_properties", sa.Text(), nullable=False),
    sa.Column("version_no", sa.Integer(), nullable=False),
    sa.Index("ix_journey_instances_due", "state", "due_at"),
    sa.Index("ix_journey_instances_profile", "profile_id", "journey_name", "state"),
    sa.Index("ix_journey_instances_journey_name_state", "journey_name", "state"),  # counts per journey (web2)
)

# Every step an instance ran, at most once per (instance, step): the idempotency key of its side effects.
journey_transitions = sa.Table(
    "journey_transitions",
    metadata,
    sa.Column("seq", BigIntPK, primary_key=True, autoincrement=True),
    sa.Column("instance_id", sa.String(26), nullable=False),
    sa.Column("journey_id", sa.String(26), nullable=False),
    sa.Column("step_id", sa.String(100), nullable=False),
    sa.Column("outcome", sa.String(200), nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("instance_id", "step_id"),
    sa.Index("ix_journey_transitions_journey", "journey_id", "step_id"),
)

# Side effects that leave Accord (webhooks) or wait for a person (tasks), written with the transition that made
# them; the dispatcher delivers webhooks with the idempotency key `instance:step`.
journey_actions = sa.Table(
    "journey_actions",
    metadata,
    sa.Column("id", sa.String(26), primary_key=True),
    sa.Column("instance_id", sa.String(26), nullable=False),
    sa.Column("step_id", sa.String(100), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # webhook | task
    sa.Column("queue", sa.String(32), nullable=True),  # task queue: store | call_center
    sa.Column("store_id", sa.String(64), nullable=True),
    sa.Column("payload", sa.Text(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # pending | done | failed | open
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
    sa.Column("last_error", sa.Text(), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("instance_id", "step_id"),
    sa.Index("ix_journey_actions_pending", "kind", "status", "next_attempt_at"),
)

# How far the journeys domain has read the event stream (journal seq) and other feeds.
journey_cursors = sa.Table(
    "journey_cursors",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("seq", sa.BigInteger(), nullable=False),
)
