"""Analytics on a real DuckDB event store: paths across channels and identities, scorecard, CLV write-back."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from accord.analytics import service
from accord.analytics.errors import InvalidInput
from accord.analytics.store import Period, build_paths, parse_window
from accord.storage import create_state_engine, migrate
from accord.storage.events import EventStore

from .conftest import T0, event_rows

OC = "Order Completed"


def test_a_store_purchase_after_an_email_click_and_an_ad_view_is_one_path(events: EventStore) -> None:
    events.load(
        event_rows(
            [
                ("anon-1@P2", 0, "ads", "Ad Viewed", None, None),  # anonymous until the identity merge below
                ("card-1@P1", 2, "email", "Email Link Clicked", None, None),
                ("card-1@P1", 2.001, "email", None, None, None),  # same visit: one touch
                ("card-1@P1", 3, "store", OC, 12_000, "PLN"),
                ("card-2@P3", 1, "web", None, None, None),  # never buys: a non-converting path
                ("card-2@P3", 50, "sms", "SMS Delivered", None, None),
                ("card-2@P3", 51, "web", OC, 5_000, "PLN"),  # the old web visit is outside the 30-day window
            ]
        ),
        7,
        [],
    )
    events.apply_changes([(1, "anon-1", "P1")])  # the ad viewer turns out to be the store buyer
    period = Period(T0 - timedelta(days=1), T0 + timedelta(days=60), parse_window("30d"))
    built = build_paths(events, period)
    found = sorted((built.paths.path(i), built.paths.conversions[i]) for i in range(built.paths.n_paths))
    assert found == [(["ads", "email", "store"], 1.0), (["sms", "web"], 1.0)]
    assert built.currency == "PLN" and built.conversions == 2
    doc = service.attribution_from_store(events, "all", window=timedelta(days=30))
    assert [m["model"] for m in doc["models"]] == list(service.MODELS)
    first = next(m for m in doc["models"] if m["model"] == "first")
    by_channel = {c["channel"]: c for c in first["channels"]}
    assert by_channel["ads"]["conversions"] == 1 and by_channel["ads"]["value"] == 12_000
    assert by_channel["sms"]["conversions"] == 1
    single = service.attribution_from_store(events, "last", window=timedelta(days=30))
    assert set(single) == {"model", "total_conversions", "channels"}


def test_non_converting_paths_and_scorecard(events: EventStore, tmp_path) -> None:  # type: ignore[no-untyped-def]
    rows = []
    for i in range(20):  # email reaches everyone; only those also reached by sms buy
        who = f"c{i}@P{i}"
        rows.append((who, 1, "email", "Email Opened", None, None))
        if i % 2 == 0:
            rows.append((who, 2, "sms", "SMS Link Clicked", None, None))
            rows.append((who, 3, "web", OC, 1_000, "EUR"))
    for i in range(20, 25):  # sms without email also sells
        rows.append((f"c{i}@P{i}", 2, "sms", "SMS Link Clicked", None, None))
        rows.append((f"c{i}@P{i}", 3, "web", OC, 1_000, "EUR"))
    events.load(event_rows(rows), 1, [])
    state = create_state_engine(f"sqlite:///{tmp_path / 'state.db'}")
    migrate(state)
    spend = [{"date": "2026-03-02", "channel": "sms", "cost": "50.00", "currency": "EUR"}]
    assert service.import_spend(state, spend, "test")["imported"] == 1
    doc = service.channel_scorecard(events, state, window=timedelta(days=30), model="markov,last")
    channels = {c["channel"]: c for c in doc["channels"]}
    assert channels["email"]["reach"] == 20 and channels["sms"]["reach"] == 15
    assert channels["web"]["conversions"] == 15
    sms = channels["sms"]
    assert (sms["cost"], sms["cost_ads"], sms["cost_messages"], doc["cost_currency"]) == (5_000, 5_000, 0, "EUR")
    assert sms["attributed"]["markov"]["conversions"] > channels["email"]["attributed"]["markov"]["conversions"]
    assert sms["cpa"] == pytest.approx(5_000 / sms["attributed"]["markov"]["conversions"])
    assert sms["roas"] == pytest.approx(sms["attributed"]["markov"]["value"] / 5_000)
    rates = {r["channels"]: r for r in doc["purchase_rate_by_channels"]}
    # the conversion event's own channel is not a reach: 10 email-only (no buyer) + 5 sms-only (buyers)
    assert rates[1] == {"channels": 1, "profiles": 15, "buyers": 5, "purchase_rate": 1 / 3, "orders_per_profile": 1 / 3}
    assert rates[2] == {"channels": 2, "profiles": 10, "buyers": 10, "purchase_rate": 1.0, "orders_per_profile": 1.0}
    with pytest.raises(InvalidInput, match="reference model"):
        service.channel_scorecard(events, model="last")


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_clv_scores_are_written_back_for_segments(
    events: EventStore, backend: str, request: pytest.FixtureRequest, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'state.db'}" if backend == "sqlite" else request.getfixturevalue("pg_url")
    state = create_state_engine(url)
    migrate(state)
    rows = []
    for i in range(60):
        n = 1 + i % 5
        for k in range(n):
            rows.append((f"c{i}@P{i:03d}", k * (20 + i % 7), "web" if k % 2 else "store", OC, 2_000 + 100 * i, "PLN"))
    events.load(event_rows(rows), 1, [])
    summary, _rows = service.clv_from_store(events, state)
    assert summary["customers"] == 60 and set(summary["bg_nbd"]) == {"r", "alpha", "a", "b", "log_likelihood"}
    stored = service.read_scores(state)
    assert len(stored) == 60
    one = stored["P004"]
    assert 0 <= one["p_alive"] <= 1 and one["churn_risk"] == pytest.approx(1 - one["p_alive"])
    assert isinstance(one["expected_next_purchase"], date) and one["currency"] == "PLN"
    assert one["rfm_segment"] and one["run_id"] == summary["run_id"]
    # a second run replaces the first one's rows
    service.write_scores(state, [{"profile_id": "P001", "p_alive": 0.5}])
    assert list(service.read_scores(state)) == ["P001"]
    with pytest.raises(InvalidInput, match="unknown score fields"):
        service.write_scores(state, [{"profile_id": "P001", "mood": 1}])
    with state.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM analytics_profile_scores")).scalar() == 1
    state.dispose()
