"""State-store table of the analytics domain: computed customer scores (CLV, P(alive), churn, next purchase, RFM)."""

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
