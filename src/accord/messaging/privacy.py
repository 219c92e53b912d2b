"""Data-subject requests: export everything Accord holds about one person as one JSON document, or erase them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from accord.collect.journal import forget_in
from accord.consent.requests import complete_request_in, erase_consents_in, record_request_in
from accord.consent.service import Consents
from accord.identity.erasure import ErasedIdentity, erase_profile_in, profiles_holding, suppress_keys_in
from accord.messaging import tables as t
from accord.messaging.purchases import purchases_of
from accord.messaging.service import Messaging, MessagingError, delivery_view
from accord.profiles import service as profiles
from accord.storage.events import EventStore


def _key(consents: Consents, identifier: str) -> str:
    try:
        return profiles.parse_identifier(identifier, consents.rules)
    except profiles.InvalidIdentifier as exc:
        raise MessagingError(str(exc), "invalid_identifier") from exc


def export_person(
    state: sa.Engine,
    events: EventStore,
    consents: Consents,
    messaging: Messaging,
    identifier: str,
    requested_by: str = "api",
) -> dict[str, Any]:
    """Profile (identifiers, traits, channels), the whole timeline, consents, messages with their content and
    decisions, and hold-outs of the person holding IDENTIFIER. The request is audited."""
    key = _key(consents, identifier)
    pid = profiles.resolve(state, consents.rules, identifier)
    if pid is None:
        raise MessagingError(f"no profile has identifier {identifier}", "unknown_profile", 404)
    timeline: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = profiles.timeline(state, events, pid, limit=1000, cursor=cursor)
        assert page is not None
        timeline.extend(page["events"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    d, s = t.deliveries, t.suppressions
    with state.connect() as conn:
        messages = [
            delivery_view(r, with_content=True)
            for r in conn.execute(sa.select(d).where(d.c.profile_id == pid).order_by(d.c.created_at))
        ]
        holds = [
            {"reason": r.reason, "since": r.since, "until": r.until, "note": r.note}
            for r in conn.execute(sa.select(s).where(s.c.profile_id == pid))
        ]
    out = {
        "profile": profiles.profile_view(state, events, pid),
        "timeline": timeline,
        "consents": consents.show(identifier)["consents"],
        "messages": messages,
        "hold_outs": holds,
        "purchases": purchases_of(state, pid),
    }
    with state.begin() as conn:
        record_request_in(
            conn, "export", key, requested_by, "done", {"events": len(timeline), "messages": len(messages)}
        )
    return out


def erase_person(
    state: sa.Engine,
    events: EventStore,
    consents: Consents,
    messaging: Messaging,
    identifier: str,
    requested_by: str = "api",
    drain: Callable[[], object] | None = None,
) -> dict[str, Any]:
    """Erase the person holding IDENTIFIER everywhere, and keep them erased.

    1. One state-store transaction: the audit record, the suppression list (hashes of every identifier they had,
       so the intake drops any later message carrying one), the identity graph, consents, and messaging's
       personal data (deliveries anonymised, unsent ones dropped, hold-outs deleted).
    2. DRAIN (the processor) finishes slices already in flight; anything they re-created is erased again.
    3. The event store deletes their events; the journal blanks those messages out of the stored request bodies.
    An identifier no profile holds is still put on the suppression list."""
    key = _key(consents, identifier)
    pid = profiles.resolve(state, consents.rules, identifier)
    with state.begin() as conn:
        request_id = record_request_in(conn, "erase", key, requested_by, "running", {})
        if pid is not None:
            erased = erase_profile_in(conn, pid, [key], request_id)
        else:
            suppressed = suppress_keys_in(conn, [key], request_id)
            erased = ErasedIdentity([], [key], {"suppressed_identifiers": suppressed})
        consent_rows = erase_consents_in(conn, erased.identifier_keys)
        message_rows = messaging.erase_in(conn, erased.profile_ids)
    if drain is not None:
        drain()
    again = _erase_stragglers(state, erased, request_id)
    gone = events.erase(erased.profile_ids, erased.identifier_keys)
    values = [k.partition(":")[2] for k in erased.identifier_keys if k.split(":", 1)[0] in ("email", "phone")]
    with state.begin() as conn:
        blanked = forget_in(conn, [(seq, message_id) for seq, _source, message_id in gone], values)
        summary = {
            "identifier_type": key.partition(":")[0],
            "profiles": len(erased.profile_ids),
            "identifiers": len(erased.identifier_keys),
            "identity_rows": erased.rows,
            "consents": consent_rows,
            "messaging": message_rows,
            "events": len(gone),
            "journal_messages": blanked,
            "re_erased_profiles": again,
        }
        complete_request_in(conn, request_id, "done", summary)
    return {"request_id": request_id, "status": "done", **summary}


def _erase_stragglers(state: sa.Engine, erased: ErasedIdentity, request_id: str) -> int:
    """Profiles that a slice in flight during the erasure attached to the person's identifiers: erase them too."""
    with state.begin() as conn:
        holders = profiles_holding(conn, erased.identifier_keys)
        for holder in holders:
            more = erase_profile_in(conn, holder, [], request_id)
            erased.profile_ids.extend(p for p in more.profile_ids if p not in erased.profile_ids)
            erased.identifier_keys.extend(k for k in more.identifier_keys if k not in erased.identifier_keys)
    return len(holders)
