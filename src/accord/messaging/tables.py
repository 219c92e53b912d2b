"""State-store tables of messaging: templates, providers, deliveries (decisions + outbox), broadcasts, suppressions,
purchases (who bought what, from order events)."""

import sqlalchemy as sa

from accord.storage import UTCDateTime, metadata

templates = sa.Table(
    "msg_templates",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("purpose", sa.String(64), nullable=False),
    sa.Column("tags", sa.Text(), nullable=False),  # JSON list
    sa.Column("default_locale", sa.String(35), nullable=False),
    sa.Column("variants", sa.Text(), nullable=False),  # JSON {locale: {channel: {field: source}}}
    sa.Column("promotes", sa.Text(), nullable=True),  # JSON {skus, categories, within}: see messaging.purchases
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

providers = sa.Table(
    "msg_providers",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("channel", sa.String(32), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("config", sa.Text(), nullable=False),  # JSON
    sa.Column("priority", sa.Integer(), nullable=False),
    sa.Column("cost_minor", sa.Integer(), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("enabled", sa.Boolean(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

# One row per (request, recipient): the policy decision with its reason and, when it is to be sent, the outbox
# entry with the rendered content. The unique idempotency key makes a retried request or a replanned broadcast a
# no-op; the row id is the idempotency key given to providers and the email Message-ID.
deliveries = sa.Table(
    "msg_deliveries",
    metadata,
    sa.Column("id", sa.String(26), primary_key=True),
    sa.Column("idempotency_key", sa.String(200), nullable=False, unique=True),
    sa.Column("profile_id", sa.String(26), nullable=False),
    sa.Column("broadcast_id", sa.String(26), nullable=True, index=True),
    sa.Column("template", sa.String(200), nullable=False),
    sa.Column("purpose", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("tags", sa.Text(), nullable=False),
    sa.Column("channel", sa.String(32), nullable=True),
    sa.Column("locale", sa.String(35), nullable=True),
    sa.Column("variant", sa.String(16), nullable=True),
    sa.Column("content", sa.Text(), nullable=True),  # JSON [{channel, address, identifier, fields}, ...] in order
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("due_at", UTCDateTime(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("claimed_until", UTCDateTime(), nullable=True),
    sa.Column("claimed_by", sa.String(26), nullable=True),
    sa.Column("provider", sa.String(200), nullable=True),
    sa.Column("provider_message_id", sa.String(200), nullable=True, index=True),
    sa.Column("sent_at", UTCDateTime(), nullable=True),
    sa.Column("delivered_at", UTCDateTime(), nullable=True),
    sa.Column("opened_at", UTCDateTime(), nullable=True),
    sa.Column("clicked_at", UTCDateTime(), nullable=True),
    sa.Column("read_at", UTCDateTime(), nullable=True),
    sa.Column("cost_minor", sa.Integer(), nullable=True),
    sa.Column("currency", sa.String(3), nullable=True),
    sa.Column("error", sa.Text(), nullable=True),
    sa.Index("ix_msg_deliveries_status_due_at", "status", "due_at"),
    sa.Index("ix_msg_deliveries_profile_id_due_at", "profile_id", "due_at"),
)

broadcasts = sa.Table(
    "msg_broadcasts",
    metadata,
    sa.Column("id", sa.String(26), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("template", sa.String(200), nullable=False),
    sa.Column("spec", sa.Text(), nullable=False),  # JSON: audience, channels, schedule, holdout, variants, rate
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("counts", sa.Text(), nullable=False),  # JSON status -> n
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

# How far each messaging listener has read the journal (journal_seq).
listener_cursors = sa.Table(
    "msg_listener_cursors",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("seq", sa.BigInteger(), nullable=False),
)

# People held out of bulk (marketing) messages: an open sales conversation or support case, a complaint.
suppressions = sa.Table(
    "msg_suppressions",
    metadata,
    sa.Column("profile_id", sa.String(26), primary_key=True),
    sa.Column("reason", sa.String(64), primary_key=True),
    sa.Column("since", UTCDateTime(), nullable=False),
    sa.Column("until", UTCDateTime(), nullable=True),
    sa.Column("note", sa.Text(), nullable=True),
)

# What each person bought, as messaging learns it from `Order Completed` events of every channel (never from
# commerce's tables): one row per (person, order, SKU), less the units returned. Read by the "already purchased
# the promoted item" rule (accord.messaging.purchases).
purchases = sa.Table(
    "msg_purchases",
    metadata,
    sa.Column("profile_id", sa.String(26), primary_key=True),
    sa.Column("order_id", sa.String(200), primary_key=True),
    sa.Column("sku", sa.String(200), primary_key=True),
    sa.Column("category", sa.String(200), nullable=True),
    sa.Column("quantity", sa.Integer(), nullable=False),
    sa.Column("returned_quantity", sa.Integer(), nullable=False),
    sa.Column("purchased_at", UTCDateTime(), nullable=False),
    sa.Column("channel", sa.String(32), nullable=True),
    # the already-purchased check: "who of these people bought one of these SKUs (categories)"
    sa.Index("ix_msg_purchases_sku_profile_id", "sku", "profile_id"),
    sa.Index("ix_msg_purchases_category_profile_id", "category", "profile_id"),
)

# Returns already applied to msg_purchases (order id + return id or event id): a return reported twice counts once.
purchase_returns = sa.Table(
    "msg_purchase_returns",
    metadata,
    sa.Column("return_key", sa.String(420), primary_key=True),
    sa.Column("profile_id", sa.String(26), nullable=False, index=True),
    sa.Column("at", UTCDateTime(), nullable=False),
)
