"""Consent's one write path and its reads: set, double opt-in, STOP/START, unsubscribe, preference centre, reach."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import sqlalchemy as sa

from accord.collect.emit import emit
from accord.collect.journal import Journal
from accord.consent import signing
from accord.consent.tables import consents
from accord.identity import queries as identity_queries
from accord.identity.rules import IdentityRules
from accord.profiles.service import InvalidIdentifier, parse_identifier
from accord.storage import utcnow

OPTED_IN = "opted_in"
OPTED_OUT = "opted_out"
PENDING = "pending"
UNKNOWN = "unknown"
STATUSES = (OPTED_IN, OPTED_OUT, PENDING, UNKNOWN)

CONSENT_CHANNELS = ("email", "sms", "push", "messenger", "in_app", "direct_mail", "call")
# The timeline channel of an event about a consent channel (collect's taxonomy).
TIMELINE_CHANNEL = {"in_app": "app", "call": "call_center"}

# Which identifier types make a person reachable on a channel.
REACH: dict[str, tuple[str, ...]] = {
    "email": ("email",),
    "sms": ("phone",),
    "call": ("phone",),
    "push": ("push_token",),
    "in_app": ("device_id", "push_token"),
    "messenger": ("messenger_id", "whatsapp"),
    "direct_mail": ("postal_address",),
}

SOURCE_NAME = "accord-consent"
_SQLITE_CONSENTS = (
    "SELECT identifier_key, purpose, channel, status, source, legal_basis, updated_at, expires_at FROM consents "
    "WHERE identifier_key IN (SELECT value FROM json_each(?))"
)
CONFIRM_TTL = 7 * 24 * 3600
SMS_STOP = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "STOP ALL"}
SMS_START = {"START", "UNSTOP", "SUBSCRIBE"}
SMS_CONFIRM = {"YES", "Y", "TAK", "JA", "OK"}


@dataclass(frozen=True)
class Purpose:
    """Why a message is sent; transactional purposes need no marketing consent and are exempt from caps."""

    name: str
    transactional: bool = False
    opt_in_required: bool = True  # GDPR: silence is no consent; False = soft opt-in (contact unless opted out)


DEFAULT_PURPOSES: dict[str, Purpose] = {
    p.name: p
    for p in (
        Purpose("newsletter"),
        Purpose("promotions"),
        Purpose("loyalty"),
        Purpose("order_updates", transactional=True),
        Purpose("service", transactional=True),
    )
}


class ConsentError(ValueError):
    """A consent change that cannot be made (unknown purpose, channel or status, bad identifier, bad link)."""

    def __init__(self, message: str, code: str = "invalid_consent", status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


@dataclass(frozen=True)
class ConsentRecord:
    """The current consent of one identifier for one purpose on one channel."""

    identifier: str
    purpose: str
    channel: str
    status: str
    source: str
    legal_basis: str | None
    updated_at: datetime
    expires_at: datetime | None

    def effective(self, at: datetime) -> str:
        """The status at AT (an expired consent is unknown again)."""
        if self.expires_at is not None and self.expires_at <= at:
            return UNKNOWN
        return self.status

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "identifier": self.identifier,
            "purpose": self.purpose,
            "channel": self.channel,
            "status": self.status,
            "effective_status": self.effective(utcnow()),
            "source": self.source,
            "legal_basis": self.legal_basis,
            "updated_at": self.updated_at.isoformat(),
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
        }


@lru_cache(maxsize=4096)
def _sqlite_time(text: str) -> datetime:
    """A UTC timestamp as SQLite stores it ('YYYY-MM-DD HH:MM:SS.ffffff'), aware (consents share few times)."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def reachable(identifiers: Mapping[str, Sequence[str]], channels: Iterable[str] = CONSENT_CHANNELS) -> list[str]:
    """The channels (in the order given) on which a person holding IDENTIFIERS (type -> values) can be reached."""
    return [c for c in channels if any(identifiers.get(t) for t in REACH.get(c, ()))]


def channel_identifiers(identifiers: Mapping[str, Sequence[str]], channel: str) -> list[str]:
    """Identifier keys ('type:value') that carry consent for CHANNEL, plus the person-level ones (user id)."""
    keys = [f"{t}:{v}" for t in REACH.get(channel, ()) for v in identifiers.get(t, ())]
    keys += [f"{t}:{v}" for t in ("user_id", "customer_id") for v in identifiers.get(t, ())]
    return keys


def decide_contact(
    purpose: Purpose, channel: str, records: Iterable[ConsentRecord | None], at: datetime
) -> tuple[bool, str]:
    """Whether the person may be contacted for PURPOSE on CHANNEL given their consent RECORDS there, and why.

    The newest record wins; transactional purposes need no consent but still honour an explicit opt-out."""
    newest: ConsentRecord | None = None
    for record in records:
        if record is not None and (newest is None or record.updated_at > newest.updated_at):
            newest = record
    status = newest.effective(at) if newest else UNKNOWN
    if status == OPTED_OUT:
        return False, f"opted_out:{purpose.name}:{channel}"
    if purpose.transactional or status == OPTED_IN:
        return True, "transactional" if purpose.transactional else "opted_in"
    if status == PENDING:
        return False, f"pending_double_opt_in:{purpose.name}:{channel}"
    if purpose.opt_in_required:
        return False, f"no_consent:{purpose.name}:{channel}"
    return True, "soft_opt_in"


@dataclass
class Consents:
    """The consent service of one platform: state store, journal (for timeline events), identity rules, secret."""

    engine: sa.Engine
    journal: Journal
    rules: IdentityRules
    secret: bytes
    base_url: str = "http://127.0.0.1:8000"
    purposes: dict[str, Purpose] = field(default_factory=lambda: dict(DEFAULT_PURPOSES))

    # -- validation -------------------------------------------------------------------------------------------
    def purpose(self, name: str) -> Purpose:
        """The purpose called NAME; ConsentError if there is none."""
        found = self.purposes.get(name)
        if found is None:
            raise ConsentError(
                f"unknown purpose {name!r}; known: {', '.join(sorted(self.purposes))}", "unknown_purpose"
            )
        return found

    def _check(self, purpose: str, channel: str, status: str) -> None:
        self.purpose(purpose)
        if channel not in CONSENT_CHANNELS:
            raise ConsentError(f"unknown channel {channel!r}; known: {', '.join(CONSENT_CHANNELS)}", "unknown_channel")
        if status not in STATUSES:
            raise ConsentError(f"unknown status {status!r}; known: {', '.join(STATUSES)}", "unknown_status")

    def identifier_key(self, identifier: str) -> str:
        """'Email: Ann@X.com' -> 'email:ann@x.com'; ConsentError when invalid."""
        try:
            return parse_identifier(identifier, self.rules)
        except InvalidIdentifier as exc:
            raise ConsentError(str(exc), "invalid_identifier") from exc

    # -- the write path ---------------------------------------------------------------------------------------
    def set_in(
        self,
        conn: sa.Connection,
        identifier_key: str,
        purpose: str,
        channel: str,
        status: str,
        source: str,
        legal_basis: str | None = None,
        expires_at: datetime | None = None,
        at: datetime | None = None,
    ) -> ConsentRecord:
        """Record a consent change and its timeline event in CONN's transaction (the one write path)."""
        self._check(purpose, channel, status)
        at = at or utcnow()
        c = consents.c
        key_match = sa.and_(c.identifier_key == identifier_key, c.purpose == purpose, c.channel == channel)
        previous = conn.execute(sa.select(c.status).where(key_match)).scalar()
        values = {
            "status": status,
            "source": source,
            "legal_basis": legal_basis,
            "updated_at": at,
            "expires_at": expires_at,
        }
        if previous is None:
            conn.execute(
                consents.insert().values(identifier_key=identifier_key, purpose=purpose, channel=channel, **values)
            )
        else:
            conn.execute(consents.update().where(key_match).values(**values))
        id_type, _, id_value = identifier_key.partition(":")
        emit(
            conn,
            self.journal,
            SOURCE_NAME,
            "other",
            [
                {
                    "type": "track",
                    "event": "Consent Changed",
                    "timestamp": at.isoformat(),
                    "context": {
                        "channel": TIMELINE_CHANNEL.get(channel, channel),
                        "externalIds": [{"type": id_type, "id": id_value, "collection": "users"}],
                    },
                    "properties": {
                        "purpose": purpose,
                        "consent_channel": channel,
                        "status": status,
                        "previous_status": previous or UNKNOWN,
                        "source": source,
                        "legal_basis": legal_basis,
                        "expires_at": expires_at.isoformat() if expires_at else None,
                    },
                }
            ],
        )
        return ConsentRecord(identifier_key, purpose, channel, status, source, legal_basis, at, expires_at)

    def set(
        self,
        identifier: str,
        purpose: str,
        channel: str,
        status: str,
        source: str,
        legal_basis: str | None = None,
        expires_at: datetime | None = None,
    ) -> ConsentRecord:
        """Set one consent (its own transaction)."""
        key = self.identifier_key(identifier)
        with self.engine.begin() as conn:
            return self.set_in(conn, key, purpose, channel, status, source, legal_basis, expires_at)

    # -- reads --------------------------------------------------------------------------------------------------
    def records_for_keys(self, conn: sa.Connection, keys: Sequence[str]) -> list[ConsentRecord]:
        """Every consent held by any of KEYS (chunked for large audiences)."""
        out: list[ConsentRecord] = []
        keys = list(dict.fromkeys(keys))
        if conn.dialect.name == "sqlite" and keys:  # bulk planning: one JSON parameter, no per-row type processing
            cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            try:
                rows = cursor.execute(_SQLITE_CONSENTS, (json.dumps(keys),)).fetchall()
            finally:
                cursor.close()
            return [
                ConsentRecord(k, p, c, st, src, lb, _sqlite_time(at), _sqlite_time(exp) if exp else None)
                for k, p, c, st, src, lb, at, exp in rows
            ]
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            rows = conn.execute(sa.select(consents).where(consents.c.identifier_key.in_(chunk)))
            out.extend(
                ConsentRecord(
                    r.identifier_key,
                    r.purpose,
                    r.channel,
                    r.status,
                    r.source,
                    r.legal_basis,
                    r.updated_at,
                    r.expires_at,
                )
                for r in rows
            )
        return out

    def show(self, identifier: str) -> dict[str, Any]:
        """The consents of the person holding IDENTIFIER (all their identifiers), and where they can be reached."""
        key = self.identifier_key(identifier)
        identifiers = self.profile_identifiers(key)
        keys = [f"{t}:{v}" for t, values in identifiers.items() for v in values] or [key]
        with self.engine.connect() as conn:
            records = self.records_for_keys(conn, keys)
        return {
            "identifier": key,
            "reachable": reachable(identifiers),
            "consents": [r.as_dict() for r in sorted(records, key=lambda r: (r.purpose, r.channel, r.identifier))],
        }

    def profile_identifiers(self, key: str) -> dict[str, list[str]]:
        """type -> values of every identifier of the profile holding KEY (just KEY when no profile holds it)."""
        pid = identity_queries.profile_for_identifier(self.engine, key)
        current = identity_queries.current_profile(self.engine, pid) if pid else None
        out: dict[str, list[str]] = {}
        if current:
            for item in identity_queries.identifiers_of(self.engine, current):
                out.setdefault(item["type"], []).append(item["value"])
        else:
            id_type, _, value = key.partition(":")
            out[id_type] = [value]
        return out

    def can_contact(
        self, identifiers: Mapping[str, Sequence[str]], purpose: str, channel: str, at: datetime | None = None
    ) -> tuple[bool, str]:
        """May a person holding IDENTIFIERS be sent a PURPOSE message on CHANNEL? (reachability, then consent)."""
        if channel not in reachable(identifiers, [channel]):
            return False, f"unreachable:{channel}"
        the_purpose = self.purpose(purpose)
        keys = channel_identifiers(identifiers, channel)
        with self.engine.connect() as conn:
            records = [r for r in self.records_for_keys(conn, keys) if r.purpose == purpose and r.channel == channel]
        return decide_contact(the_purpose, channel, records, at or utcnow())

    # -- double opt-in ----------------------------------------------------------------------------------------
    def request_double_opt_in(self, identifier: str, purpose: str, channel: str, source: str) -> dict[str, Any]:
        """Mark the consent pending and return the signed confirmation link (email) or the keyword to reply (SMS)."""
        key = self.identifier_key(identifier)
        with self.engine.begin() as conn:
            self.set_in(conn, key, purpose, channel, PENDING, source, "consent")
        token = signing.sign(self.secret, "confirm", {"k": key, "p": purpose, "c": channel}, CONFIRM_TTL)
        return {
            "identifier": key,
            "status": PENDING,
            "token": token,
            "confirm_url": f"{self.base_url}/consent/confirm/{token}",
            "sms_keyword": "YES",
        }

    def confirm(self, token: str) -> ConsentRecord:
        """The person clicked the confirmation link: pending becomes opted in."""
        try:
            payload = signing.verify(self.secret, "confirm", token)
        except signing.InvalidToken as exc:
            raise ConsentError(str(exc), "invalid_token", 404) from exc
        with self.engine.begin() as conn:
            return self.set_in(conn, payload["k"], payload["p"], payload["c"], OPTED_IN, "double_opt_in", "consent")

    # -- inbound SMS keywords -----------------------------------------------------------------------------------
    def inbound_sms(self, phone: str, text: str) -> dict[str, Any]:
        """STOP opts the number out of every marketing purpose on SMS; START opts back in; YES confirms pending."""
        key = self.identifier_key(f"phone:{phone}")
        word = " ".join(text.strip().upper().split())
        changed: list[dict[str, Any]] = []
        with self.engine.begin() as conn:
            current = {r.purpose: r for r in self.records_for_keys(conn, [key]) if r.channel == "sms"}
            marketing = [p for p in self.purposes.values() if not p.transactional]
            if word in SMS_STOP:
                action, targets, status = "stop", marketing, OPTED_OUT
            elif word in SMS_START:
                action, targets, status = "start", [p for p in marketing if p.name in current], OPTED_IN
            elif word in SMS_CONFIRM:
                action, status = "confirm", OPTED_IN
                targets = [p for p in marketing if p.name in current and current[p.name].status == PENDING]
            else:
                return {"identifier": key, "action": "none", "changed": []}
            for p in targets:
                record = self.set_in(conn, key, p.name, "sms", status, f"sms_keyword:{word}", "consent")
                changed.append(record.as_dict())
        return {"identifier": key, "action": action, "changed": changed}

    # -- unsubscribe and preference centre ------------------------------------------------------------------------
    def unsubscribe_token(self, identifier_key: str, purpose: str, channel: str) -> str:
        """The signed token of a message's one-click unsubscribe and preference-centre links (no expiry)."""
        return signing.sign_value(self.secret, "unsub", f"{purpose}|{channel}|{identifier_key}")

    def unsubscribe_links(self, identifier_key: str, purpose: str, channel: str) -> dict[str, str]:
        """RFC 8058 one-click URL and the preference-centre URL for one recipient."""
        token = self.unsubscribe_token(identifier_key, purpose, channel)
        return {
            "one_click": f"{self.base_url}/consent/unsubscribe/{token}",
            "preferences": f"{self.base_url}/consent/preferences/{token}",
        }

    def _unsub_payload(self, token: str) -> dict[str, Any]:
        try:
            purpose, channel, key = signing.verify_value(self.secret, "unsub", token).split("|", 2)
        except (signing.InvalidToken, ValueError) as exc:
            raise ConsentError(str(exc) or "malformed link token", "invalid_token", 404) from exc
        return {"k": key, "p": purpose, "c": channel}

    def unsubscribe(self, token: str) -> ConsentRecord:
        """RFC 8058 one-click unsubscribe: the purpose of the message on its channel is opted out."""
        payload = self._unsub_payload(token)
        with self.engine.begin() as conn:
            return self.set_in(conn, payload["k"], payload["p"], payload["c"], OPTED_OUT, "one_click_unsubscribe")

    def preferences(self, token: str) -> dict[str, Any]:
        """What the preference centre shows: every marketing purpose on the link's channel with its status."""
        payload = self._unsub_payload(token)
        key, channel = payload["k"], payload["c"]
        with self.engine.connect() as conn:
            records = {r.purpose: r for r in self.records_for_keys(conn, [key]) if r.channel == channel}
        now = utcnow()
        return {
            "identifier": key,
            "channel": channel,
            "purposes": [
                {"purpose": p.name, "status": records[p.name].effective(now) if p.name in records else UNKNOWN}
                for p in self.purposes.values()
                if not p.transactional
            ],
        }

    def update_preferences(self, token: str, wanted: Mapping[str, bool]) -> dict[str, Any]:
        """The preference centre form: each purpose ticked is opted in, each unticked opted out."""
        payload = self._unsub_payload(token)
        key, channel = payload["k"], payload["c"]
        with self.engine.begin() as conn:
            for name, yes in wanted.items():
                if self.purpose(name).transactional:
                    continue
                self.set_in(conn, key, name, channel, OPTED_IN if yes else OPTED_OUT, "preference_centre", "consent")
        return self.preferences(token)
