"""State-store tables of the analytics domain: computed customer scores, and imported ad spend per channel and day."""

import sqlalchemy as sa

from accord.storage import UTCDateTime, metadata

# One row per profile, replaced on every scoring run; segments and journeys read it through
# accord.analytics.service.read_scores (never this table directly).
profile_scores = sa.Table(
    "analytics_profile_scores",
    metadata,
    sa.Column("profile_id", sa.String(26), primary_key=True),
    sa.Column("run_id", sa.String(26), nullable=False, index=True),
    sa.Column("computed_at", UTCDateTime(), nullable=False),
    sa.Column("p_alive", sa.Float(), nullable=True),
    sa.Column("churn_risk", sa.Float(), nullable=True),
    sa.Column("expected_purchases", sa.Float(), nullable=True),
    sa.Column("horizon_days", sa.Integer(), nullable=True),
    sa.Column("clv_minor", sa.BigInteger(), nullable=True),
    sa.Column("currency", sa.String(3), nullable=True),
    sa.Column("expected_next_purchase", sa.Date(), nullable=True),
    sa.Column("rfm_r", sa.SmallInteger(), nullable=True),
    sa.Column("rfm_f", sa.SmallInteger(), nullable=True),
    sa.Column("rfm_m", sa.SmallInteger(), nullable=True),
    sa.Column("rfm_segment", sa.String(32), nullable=True),
)

# Imported ad spend: one row per day, channel and campaign ("" when the file has none), in minor units. A
# re-import of the same (day, channel, campaign) replaces the amount, so importing a file twice changes nothing.
ad_spend = sa.Table(
    "analytics_ad_spend",
    metadata,
    sa.Column("day", sa.Date(), primary_key=True),
    sa.Column("channel", sa.String(32), primary_key=True),
    sa.Column("campaign", sa.String(200), primary_key=True),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("cost_minor", sa.BigInteger(), nullable=False),
    sa.Column("source", sa.String(200), nullable=False),
    sa.Column("imported_at", UTCDateTime(), nullable=False),
)
