"""Messaging's one write path: templates, providers, send (policy + render + outbox in one transaction), feedback."""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from accord.collect.emit import emit
from accord.collect.journal import Journal
from accord.consent import signing
from accord.consent.service import ConsentRecord, Consents, Purpose
from accord.messaging import tables as t
from accord.messaging.policy import (
    KINDS,
    MARKETING,
    PERIODS,
    Decision,
    PolicyConfig,
    Sent,
    decide,
)
from accord.messaging.purchases import Promotion, PromotionError, bought
from accord.messaging.recipients import AudienceResolver, Recipient, RecipientLoader
from accord.messaging.templates import (
    CHANNEL_FIELDS,
    CompiledTemplate,
    TemplateProblem,
    check_sample,
    context_for,
    resolve_locale,
)
from accord.storage import new_id, utcnow

SOURCE_NAME = "accord-messaging"
TIMELINE_CHANNEL = {"in_app": "app", "webhook": "other", "call": "call_center"}
ADDRESS_TYPES = {
    "email": ("email",),
    "sms": ("phone",),
    "push": ("push_token",),
    "in_app": ("device_id", "push_token"),
    "messenger": ("messenger_id", "whatsapp"),
    "direct_mail": ("postal_address",),  # as consent's reachability (REACH): the identifier carries the consent
    "call": ("phone",),
}
LIVE = ("queued", "sending", "sent", "delivered", "opened", "clicked")
# Forward-only delivery states: a late "delivered" never overwrites "clicked".
RANK = {
    "queued": 0,
    "sending": 1,
    "sent": 2,
    "delivered": 3,
    "opened": 4,
    "clicked": 5,
    "bounced": 6,
    "failed": 6,
    "complained": 7,
    "unsubscribed": 7,
}
EVENT_NAMES = {
    "queued": "Message Queued",
    "sent": "Message Sent",
    "delivered": "Message Delivered",
    "opened": "Message Opened",
    "clicked": "Message Clicked",
    "bounced": "Message Bounced",
    "failed": "Message Failed",
    "complained": "Message Complained",
    "unsubscribed": "Message Unsubscribed",
    "read": "Message Read",
}
ERASED_PROFILE = "erased"  # the profile id of deliveries whose person was erased
_HREF = re.compile(r'href="(https?://[^"]+)"')


def promotion_from(spec: Any) -> Promotion | None:
    """A `promotes` declaration (template or broadcast), or MessagingError `invalid_promotes`."""
    try:
        return Promotion.parse(spec)
    except PromotionError as exc:
        raise MessagingError(str(exc), "invalid_promotes", place="promotes") from exc


class MessagingError(ValueError):
    """A request messaging cannot take (unknown template/profile/provider, bad option); status is the HTTP one."""

    def __init__(
        self,
        message: str,
        code: str = "invalid_request",
        status: int = 400,
        place: str | None = None,
        line: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.place = place  # a template's locale/channel/field at fault, when known
        self.line = line  # the line of a template syntax error inside that field


@dataclass
class SendRequest:
    """One message to send to one or many people."""

    template: str
    channels: list[str] | None = None
    purpose: str | None = None
    kind: str = MARKETING
    tags: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    sender: str | None = None  # a one-to-one email's From (the rep's own address)
    due_at: datetime | None = None
    broadcast_id: str | None = None
    variant: str | None = None
    holdout_percent: float = 0.0  # a broadcast's deterministic holdout (measured against, never sent)
    due_for: Callable[[Recipient, int], datetime] | None = None  # per-recipient time (local time of day, rate)
    promotes: Promotion | None = None  # overrides the template's promoted items (a broadcast's own declaration)


@dataclass
class Planned:
    """Decided and rendered messages, not yet written: outbox rows (OUTBOX_COLUMNS order) and their events."""

    rows: list[tuple[Any, ...]]
    events: list[dict[str, Any]]
    counts: dict[str, int]
    now: datetime


def _insert(engine_or_conn: sa.Connection) -> Any:
    """An INSERT ... ON CONFLICT DO NOTHING builder for the connection's dialect."""
    return postgresql.insert if engine_or_conn.dialect.name == "postgresql" else sqlite.insert


@dataclass
class Messaging:
    """The messaging service of one platform."""

    engine: sa.Engine
    journal: Journal
    consents: Consents
    loader: RecipientLoader
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    audience: AudienceResolver | None = None
    emit_queued: bool = True
    _templates: dict[str, tuple[datetime, CompiledTemplate]] = field(default_factory=dict)

    @property
    def secret(self) -> bytes:
        """The link-signing secret (shared with consent)."""
        return self.consents.secret

    @property
    def base_url(self) -> str:
        """Public base URL of tracking and unsubscribe links."""
        return self.consents.base_url

    # -- templates ----------------------------------------------------------------------------------------------
    def compile_template(self, spec: Mapping[str, Any]) -> CompiledTemplate:
        """Validate and compile a template spec (with its promoted items) without saving; MessagingError names the
        field (and line) at fault."""
        name = spec.get("name")
        if not isinstance(name, str) or not name.strip():
            raise MessagingError("a template needs a name", "invalid_template", place="name")
        purpose = str(spec.get("purpose", "promotions"))
        try:
            self.consents.purpose(purpose)
        except ValueError as exc:
            raise MessagingError(str(exc), "unknown_purpose", place="purpose") from exc
        tags = list(spec.get("tags", []))
        default_locale = str(spec.get("default_locale", "en"))
        try:
            compiled = CompiledTemplate.build(name, purpose, tags, default_locale, spec.get("locales", {}))
            check_sample(compiled)
        except TemplateProblem as exc:
            raise MessagingError(exc.message, exc.code, place=exc.place, line=exc.line) from exc
        compiled.promotes = promotion_from(spec.get("promotes"))
        return compiled

    def save_template(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        """Create or replace a template: {name, purpose, tags, default_locale, locales: {locale: {channel: {...}}},
        promotes?: {skus, categories, within}}."""
        compiled = self.compile_template(spec)
        name, purpose, tags, default_locale = compiled.name, compiled.purpose, compiled.tags, compiled.default_locale
        now = utcnow()
        row = {
            "purpose": purpose,
            "tags": json.dumps(tags),
            "default_locale": default_locale,
            "variants": json.dumps(compiled.variants, ensure_ascii=False),
            "promotes": json.dumps(compiled.promotes.to_dict()) if compiled.promotes else None,
            "updated_at": now,
        }
        with self.engine.begin() as conn:
            exists = conn.execute(sa.select(t.templates.c.name).where(t.templates.c.name == name)).first()
            if exists:
                conn.execute(t.templates.update().where(t.templates.c.name == name).values(**row))
            else:
                conn.execute(t.templates.insert().values(name=name, **row))
        self._templates[name] = (now, compiled)
        return self.describe_template(compiled)

    @staticmethod
    def describe_template(compiled: CompiledTemplate) -> dict[str, Any]:
        """Name, purpose, tags, locales and channels of a template."""
        return {
            "name": compiled.name,
            "purpose": compiled.purpose,
            "tags": compiled.tags,
            "default_locale": compiled.default_locale,
            "locales": {loc: sorted(ch) for loc, ch in compiled.variants.items()},
            "promotes": compiled.promotes.to_dict() if compiled.promotes else None,
        }

    def template(self, name: str) -> CompiledTemplate:
        """The compiled template NAME (cached while unchanged)."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(t.templates).where(t.templates.c.name == name)).first()
        if row is None:
            raise MessagingError(f"no template named {name!r}", "unknown_template", 404)
        cached = self._templates.get(name)
        if cached and cached[0] == row.updated_at:
            return cached[1]
        compiled = CompiledTemplate.build(
            row.name, row.purpose, json.loads(row.tags), row.default_locale, json.loads(row.variants)
        )
        compiled.promotes = Promotion.parse(json.loads(row.promotes)) if row.promotes else None
        self._templates[name] = (row.updated_at, compiled)
        return compiled

    def list_templates(self) -> list[dict[str, Any]]:
        """Every template with its locales and channels."""
        with self.engine.connect() as conn:
            names = [r.name for r in conn.execute(sa.select(t.templates.c.name).order_by(t.templates.c.name))]
        return [self.describe_template(self.template(n)) for n in names]

    def preview(
        self,
        template: str,
        profile_id: str | None = None,
        recipient: Recipient | None = None,
        locale: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Every channel of TEMPLATE rendered for one profile (or sample data), in their locale."""
        return self.preview_compiled(self.template(template), profile_id, recipient, locale, extra)

    def preview_spec(
        self,
        spec: Mapping[str, Any],
        profile_id: str | None = None,
        locale: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """An unsaved template (as save_template takes it) validated and rendered for one profile; nothing is saved."""
        return self.preview_compiled(self.compile_template(spec), profile_id, None, locale, extra)

    def preview_compiled(
        self,
        compiled: CompiledTemplate,
        profile_id: str | None = None,
        recipient: Recipient | None = None,
        locale: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Every channel of a compiled template rendered for one profile (or sample data), in their locale."""
        template = compiled.name
        if recipient is None and profile_id is not None:
            recipient = self.loader([profile_id]).get(profile_id)
            if recipient is None:
                raise MessagingError(f"no profile {profile_id}", "unknown_profile", 404)
        traits = dict(recipient.traits) if recipient else {}
        wanted = locale or traits.get("locale")
        ctx = context_for(traits, extra)
        channels: dict[str, Any] = {}
        locales: dict[str, str] = {}
        for channel in CHANNEL_FIELDS:
            try:
                out = compiled.render(channel, wanted, ctx)
            except TemplateProblem as exc:
                raise MessagingError(exc.message, exc.code, place=exc.place, line=exc.line) from exc
            if out is not None:
                locales[channel], channels[channel] = out
        return {
            "template": template,
            "profile_id": recipient.profile_id if recipient else None,
            "locale": resolve_locale(wanted, list(compiled.compiled), compiled.default_locale),
            "channel_locales": locales,
            "channels": channels,
        }

    # -- providers ----------------------------------------------------------------------------------------------
    def add_provider(
        self,
        name: str,
        channel: str,
        kind: str,
        config: Mapping[str, Any],
        priority: int = 100,
        cost_minor: int = 0,
        currency: str = "EUR",
    ) -> dict[str, Any]:
        """Register (or replace) a provider of CHANNEL; lower priority is tried first, the next one on failure."""
        from accord.messaging.adapters.http import make_adapter

        if channel not in CHANNEL_FIELDS:
            raise MessagingError(f"unknown channel {channel!r}; known: {', '.join(CHANNEL_FIELDS)}", "unknown_channel")
        if len(currency) != 3 or not currency.isalpha():
            raise MessagingError("currency must be an ISO 4217 code", "invalid_currency")
        try:
            make_adapter(name, channel, kind, dict(config)).close()
        except (ValueError, KeyError) as exc:
            raise MessagingError(f"provider {name}: {exc}", "invalid_provider") from exc
        row = {
            "channel": channel,
            "kind": kind,
            "config": json.dumps(dict(config)),
            "priority": priority,
            "cost_minor": cost_minor,
            "currency": currency.upper(),
            "enabled": True,
            "created_at": utcnow(),
        }
        with self.engine.begin() as conn:
            conn.execute(t.providers.delete().where(t.providers.c.name == name))
            conn.execute(t.providers.insert().values(name=name, **row))
        return {"name": name, **{k: v for k, v in row.items() if k not in ("config", "created_at")}}

    def list_providers(self) -> list[dict[str, Any]]:
        """Providers by channel and priority (configuration secrets are not shown)."""
        p = t.providers
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(p).order_by(p.c.channel, p.c.priority, p.c.name)).all()
        return [
            {
                "name": r.name,
                "channel": r.channel,
                "kind": r.kind,
                "priority": r.priority,
                "cost_minor": r.cost_minor,
                "currency": r.currency,
                "enabled": r.enabled,
            }
            for r in rows
        ]

    def remove_provider(self, name: str) -> None:
        """Forget a provider."""
        with self.engine.begin() as conn:
            if conn.execute(t.providers.delete().where(t.providers.c.name == name)).rowcount == 0:
                raise MessagingError(f"no provider named {name!r}", "unknown_provider", 404)

    # -- suppressions ---------------------------------------------------------------------------------------------
    def suppress(self, profile_id: str, reason: str, until: datetime | None = None, note: str | None = None) -> None:
        """Hold PROFILE_ID out of bulk messages for REASON (sales_conversation, support_case, complained)."""
        with self.engine.begin() as conn:
            self.suppress_in(conn, profile_id, reason, until, note)

    def suppress_in(
        self, conn: sa.Connection, profile_id: str, reason: str, until: datetime | None, note: str | None
    ) -> None:
        """The hold-out write path, in CONN's transaction."""
        s = t.suppressions
        conn.execute(s.delete().where(s.c.profile_id == profile_id, s.c.reason == reason))
        conn.execute(s.insert().values(profile_id=profile_id, reason=reason, since=utcnow(), until=until, note=note))

    def lift(self, profile_id: str, reason: str) -> bool:
        """End a hold-out (the conversation or case is closed)."""
        s = t.suppressions
        with self.engine.begin() as conn:
            return bool(conn.execute(s.delete().where(s.c.profile_id == profile_id, s.c.reason == reason)).rowcount)

    def erase_in(self, conn: sa.Connection, profile_ids: Sequence[str]) -> dict[str, int]:
        """Data-subject erasure of messaging's personal data, in CONN's transaction: deliveries keep their counts and
        costs but lose their person, address and content (unsent ones are dropped); hold-outs and the record of
        their purchases are deleted."""
        d, s, p, r = t.deliveries, t.suppressions, t.purchases, t.purchase_returns
        ids = list(dict.fromkeys(profile_ids))
        out = {"deliveries_dropped": 0, "deliveries_anonymised": 0, "hold_outs": 0, "purchases": 0}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            unsent = conn.execute(
                d.update()
                .where(d.c.profile_id.in_(chunk), d.c.status.in_(("queued", "sending")))
                .values(status="dropped", reason="person erased", claimed_by=None, claimed_until=None)
            )
            out["deliveries_dropped"] += int(unsent.rowcount or 0)
            done = conn.execute(
                d.update()
                .where(d.c.profile_id.in_(chunk))
                .values(profile_id=ERASED_PROFILE, content=None, provider_message_id=None, error=None)
            )
            out["deliveries_anonymised"] += int(done.rowcount or 0)
            out["hold_outs"] += int(conn.execute(s.delete().where(s.c.profile_id.in_(chunk))).rowcount or 0)
            out["purchases"] += int(conn.execute(p.delete().where(p.c.profile_id.in_(chunk))).rowcount or 0)
            conn.execute(r.delete().where(r.c.profile_id.in_(chunk)))
        return out

    # -- sending --------------------------------------------------------------------------------------------------
    def send(
        self,
        profile_id: str,
        template: str,
        channels: Sequence[str] | None = None,
        purpose: str | None = None,
        kind: str = MARKETING,
        idempotency_key: str | None = None,
        extra: Mapping[str, Any] | None = None,
        sender: str | None = None,
        at: datetime | None = None,
        tags: Sequence[str] = (),
    ) -> dict[str, Any]:
        """Decide, render and queue one message for one profile (journeys call this). A retry with the same
        IDEMPOTENCY_KEY returns the first decision and queues nothing new."""
        recipient = self.loader([profile_id]).get(profile_id)
        if recipient is None:
            raise MessagingError(f"no profile {profile_id}", "unknown_profile", 404)
        request = SendRequest(
            template, list(channels) if channels else None, purpose, kind, list(tags), dict(extra or {}), sender, at
        )
        key = idempotency_key or f"send:{new_id()}"
        with self.engine.begin() as conn:
            self.plan_in(conn, [(recipient, key)], request)
            row = conn.execute(sa.select(t.deliveries).where(t.deliveries.c.idempotency_key == key)).one()
        return delivery_view(row)

    def plan_in(
        self, conn: sa.Connection, batch: Sequence[tuple[Recipient, str]], request: SendRequest
    ) -> dict[str, int]:
        """Policy decision + render + outbox row for each (recipient, idempotency key), in CONN's transaction.
        Returns counts by status. Rows whose key already exists are left as they are."""
        return self.write_in(conn, self.prepare_in(conn, batch, request))

    def prepare_in(self, conn: sa.Connection, batch: Sequence[tuple[Recipient, str]], request: SendRequest) -> Planned:
        """The reading and CPU half of plan_in: policy inputs loaded in bulk, decisions, rendered outbox rows."""
        if request.kind not in KINDS:
            raise MessagingError(f"unknown kind {request.kind!r}; known: {', '.join(KINDS)}", "invalid_kind")
        compiled = self.template(request.template)
        try:
            purpose = self.consents.purpose(request.purpose or compiled.purpose)
        except ValueError as exc:
            raise MessagingError(str(exc), "unknown_purpose") from exc
        channels = list(request.channels or self.policy.default_channels)
        unknown = [c for c in channels if c not in CHANNEL_FIELDS]
        if unknown:
            raise MessagingError(f"unknown channels {unknown}; known: {', '.join(CHANNEL_FIELDS)}", "unknown_channel")
        tags = list(dict.fromkeys([*compiled.tags, *request.tags]))
        tags_json = json.dumps(tags)
        now = utcnow()
        due = request.due_at or now
        recipients = [r for r, _ in batch]
        consent = self._consent_map(conn, recipients)
        history = self._history(conn, [r.profile_id for r in recipients], due)
        suppressed = self._suppressed(conn, [r.profile_id for r in recipients], now)
        promotion = request.promotes or compiled.promotes
        marketing = request.kind == MARKETING and not purpose.transactional
        already = bought(conn, [r.profile_id for r in recipients], promotion, now) if promotion and marketing else {}
        window = promotion.label() if promotion else ""
        rows: list[tuple[Any, ...]] = []
        events: list[dict[str, Any]] = []
        counts: dict[str, int] = defaultdict(int)
        for index, (recipient, key) in enumerate(batch):
            pid = recipient.profile_id
            due_one = request.due_for(recipient, index) if request.due_for else due
            decision = self._holdout(pid, request) or decide(
                profile_id=pid,
                identifiers=recipient.identifiers,
                traits=recipient.traits,
                purpose=purpose,
                kind=request.kind,
                channels=channels,
                tags=tags,
                consent=consent,
                history=history.get(pid, ()),
                suppressed=suppressed.get(pid, ()),
                due_at=due_one,
                config=self.policy,
                purchased=f"{already[pid]} {window}" if pid in already else None,
            )
            delivery_id = fast_ulid()
            content, locale, decision = self._render(delivery_id, recipient, compiled, purpose, request, decision)
            counts[decision.status] += 1
            rows.append(
                (
                    delivery_id,
                    key,
                    pid,
                    request.broadcast_id,
                    request.template,
                    purpose.name,
                    request.kind,
                    tags_json,
                    decision.channels[0] if decision.channels else None,
                    locale,
                    request.variant,
                    _encode_json(content).decode() if content else None,
                    decision.status,
                    decision.reason,
                    decision.due_at or due_one,
                    now,
                    0,
                )
            )
            if decision.status == "queued":
                if request.kind == MARKETING and not purpose.transactional:
                    history.setdefault(pid, []).append(
                        Sent(decision.due_at or due_one, decision.channels[0], tuple(tags))
                    )
                if self.emit_queued:
                    events.append(delivery_event("queued", content[0], pid, delivery_id, request, now, {}))
        return Planned(rows, events, dict(counts), now)

    def write_in(self, conn: sa.Connection, planned: Planned) -> dict[str, int]:
        """The writing half of plan_in: outbox rows and their `Message Queued` events, in CONN's transaction."""
        rows, events, now = planned.rows, planned.events, planned.now
        if rows:
            inserted_count = insert_deliveries(conn, rows)
            if events and inserted_count != len(rows):
                # some keys existed already (a retry): keep only the events of rows really inserted
                inserted = {
                    r.id
                    for r in conn.execute(
                        sa.select(t.deliveries.c.id).where(t.deliveries.c.id.in_([x[0] for x in rows]))
                    )
                }
                events = [e for e in events if e["properties"]["delivery_id"] in inserted]
        if events:
            emit_events(conn, self.journal, events, now)
        return dict(planned.counts)

    def _render(
        self,
        delivery_id: str,
        recipient: Recipient,
        compiled: CompiledTemplate,
        purpose: Purpose,
        request: SendRequest,
        decision: Decision,
    ) -> tuple[list[dict[str, Any]], str | None, Decision]:
        if decision.status != "queued":
            return [], None, decision
        content: list[dict[str, Any]] = []
        locale: str | None = None
        missing: list[str] = []
        for channel in decision.channels:
            address_type, address = _address(recipient, channel)
            if address is None:
                missing.append(f"no address for {channel}")
                continue
            identifier = f"{address_type}:{address}"
            extra = dict(request.extra)
            headers: dict[str, str] = {}
            if request.kind == MARKETING and not purpose.transactional:
                unsub = self.consents.unsubscribe_links(identifier, purpose.name, channel)
                extra.setdefault("unsubscribe_url", unsub["one_click"])
                extra.setdefault("preferences_url", unsub["preferences"])
                if channel == "email":
                    headers["List-Unsubscribe"] = f"<{unsub['one_click']}>"
                    headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
            try:
                out = compiled.render(channel, recipient.traits.get("locale"), context_for(recipient.traits, extra))
            except TemplateProblem as exc:
                missing.append(f"{channel}: {exc.message}")
                continue
            if out is None:
                missing.append(f"no {channel} variant")
                continue
            used, fields = out
            locale = locale or used
            if channel == "email" and request.sender:
                fields["from"] = request.sender
            if channel in ("direct_mail", "call"):
                fields["recipient_name"] = recipient_name(recipient.traits)
            links: list[str] = []
            if channel == "email" and fields.get("html"):
                fields["html"], links = self._track_html(delivery_id, fields["html"])
            entry: dict[str, Any] = {"channel": channel, "address": address, "identifier": identifier, "fields": fields}
            if links:
                entry["links"] = links
            if headers:
                entry["headers"] = headers
            content.append(entry)
        if not content:
            return [], None, Decision("dropped", decision.reason + "; " + "; ".join(missing))
        if missing:
            decision.reason += "; " + "; ".join(missing)
        decision.channels = [c["channel"] for c in content]
        return content, locale, decision

    @staticmethod
    def _holdout(profile_id: str, request: SendRequest) -> Decision | None:
        if request.holdout_percent <= 0:
            return None
        digest = hashlib.sha256(f"{request.broadcast_id}:{profile_id}".encode()).digest()
        if int.from_bytes(digest[:8], "big") / 2**64 * 100 < request.holdout_percent:
            return Decision("held_out", f"broadcast holdout {request.holdout_percent:g}%")
        return None

    def _track_html(self, delivery_id: str, html: str) -> tuple[str, list[str]]:
        """Links become signed click redirects (by index into the delivery's link list), plus an open pixel."""
        token = signing.sign_value(self.secret, "track", delivery_id)
        links: list[str] = []

        def link(match: re.Match[str]) -> str:
            if "/consent/" in match.group(1):
                return match.group(0)  # unsubscribe and preference links stay direct
            links.append(match.group(1))
            return f'href="{self.base_url}/t/c/{token}/{len(links) - 1}"'

        tracked = _HREF.sub(link, html)
        pixel = f'<img src="{self.base_url}/t/o/{token}.gif" width="1" height="1" alt="">'
        if "</body>" in tracked:
            return tracked.replace("</body>", pixel + "</body>", 1), links
        return tracked + pixel, links

    def _consent_map(
        self, conn: sa.Connection, recipients: Sequence[Recipient]
    ) -> dict[tuple[str, str, str], ConsentRecord]:
        keys = [k for r in recipients for k in r.identifier_keys()]
        return {(c.identifier, c.purpose, c.channel): c for c in self.consents.records_for_keys(conn, keys)}

    def _history(self, conn: sa.Connection, profile_ids: Sequence[str], due: datetime) -> dict[str, list[Sent]]:
        if not self.policy.caps:
            return {}
        longest = max(PERIODS[c.period] for c in self.policy.caps)
        low, high = due - longest, due + longest + timedelta(days=2)  # local-time and rate-limited sends spread out
        ids = list(dict.fromkeys(profile_ids))
        out: dict[str, list[Sent]] = {}
        if conn.dialect.name == "sqlite":  # bulk planning: one JSON parameter, no per-row type processing
            cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            try:
                rows = cursor.execute(_SQLITE_HISTORY, (json.dumps(ids), _sqlite_time(low), _sqlite_time(high)))
                tag_cache: dict[str, tuple[str, ...]] = {}
                for pid, due_at, channel, tags in rows.fetchall():
                    if tags not in tag_cache:
                        tag_cache[tags] = tuple(json.loads(tags))
                    out.setdefault(pid, []).append(Sent(_parse_sqlite_time(due_at), channel or "", tag_cache[tags]))
            finally:
                cursor.close()
            return out
        d = t.deliveries
        for start in range(0, len(ids), 500):
            result = conn.execute(
                sa.select(d.c.profile_id, d.c.due_at, d.c.channel, d.c.tags).where(
                    d.c.profile_id.in_(ids[start : start + 500]),
                    d.c.kind == MARKETING,
                    d.c.status.in_(LIVE),
                    d.c.due_at > low,
                    d.c.due_at < high,
                )
            )
            for pid, due_at, channel, tags in result:
                out.setdefault(pid, []).append(Sent(due_at, channel or "", tuple(json.loads(tags))))
        return out

    def _suppressed(self, conn: sa.Connection, profile_ids: Sequence[str], now: datetime) -> dict[str, list[str]]:
        s = t.suppressions
        out: dict[str, list[str]] = {}
        ids = list(dict.fromkeys(profile_ids))
        for start in range(0, len(ids), 500):
            rows = conn.execute(
                sa.select(s.c.profile_id, s.c.reason).where(
                    s.c.profile_id.in_(ids[start : start + 500]), sa.or_(s.c.until.is_(None), s.c.until > now)
                )
            )
            for pid, reason in rows:
                out.setdefault(pid, []).append(reason)
        return out

    # -- reads ----------------------------------------------------------------------------------------------------
    def deliveries_of(self, profile_id: str, limit: int = 100) -> list[dict[str, Any]]:
        """The profile's messages and decisions, newest first."""
        d = t.deliveries
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(d)
                .where(d.c.profile_id == profile_id)
                .order_by(d.c.created_at.desc(), d.c.id.desc())
                .limit(limit)
            ).all()
        return [delivery_view(r) for r in rows]

    def delivery(self, delivery_id: str) -> dict[str, Any]:
        """One delivery with its content."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(t.deliveries).where(t.deliveries.c.id == delivery_id)).first()
        if row is None:
            raise MessagingError(f"no delivery {delivery_id}", "unknown_delivery", 404)
        return delivery_view(row, with_content=True)

    def inbox(self, profile_id: str) -> list[dict[str, Any]]:
        """The in-app inbox of a profile: delivered in-app messages, newest first, with read state."""
        d = t.deliveries
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(d)
                .where(
                    d.c.profile_id == profile_id,
                    d.c.channel == "in_app",
                    d.c.status.in_(("delivered", "opened", "clicked")),
                )
                .order_by(d.c.delivered_at.desc())
            ).all()
        out = []
        for r in rows:
            fields = json.loads(r.content)[0]["fields"]
            out.append(
                {
                    "id": r.id,
                    "title": fields.get("title"),
                    "body": fields.get("body"),
                    "deep_link": fields.get("deep_link"),
                    "delivered_at": r.delivered_at,
                    "read": r.read_at is not None,
                }
            )
        return out

    def mark_read(self, profile_id: str, delivery_id: str) -> dict[str, Any]:
        """The app reports an inbox message read (an 'opened' on the timeline)."""
        with self.engine.begin() as conn:
            row = conn.execute(
                sa.select(t.deliveries).where(t.deliveries.c.id == delivery_id, t.deliveries.c.profile_id == profile_id)
            ).first()
            if row is None or row.channel != "in_app":
                raise MessagingError(f"no in-app message {delivery_id} for this profile", "unknown_delivery", 404)
            if row.read_at is None:
                conn.execute(t.deliveries.update().where(t.deliveries.c.id == delivery_id).values(read_at=utcnow()))
                self.record_state_in(conn, row, "opened", {"via": "inbox"})
        return {"id": delivery_id, "read": True}

    def call_tasks(self, status: str | None = "sent", limit: int = 500) -> list[dict[str, Any]]:
        """The call-centre task list (call-channel deliveries; `sent` = still to call). See calls.py."""
        from accord.messaging.calls import call_tasks

        return call_tasks(self, status, limit)

    def record_call(
        self, delivery_id: str, outcome: str, agent: str | None = None, note: str | None = None
    ) -> dict[str, Any]:
        """An agent's outcome of a call task (reached, no_answer, refused), on the customer's timeline."""
        from accord.messaging.calls import record_call

        return record_call(self, delivery_id, outcome, agent, note)

    # -- delivery states ------------------------------------------------------------------------------------------
    def record_state_in(
        self, conn: sa.Connection, row: Any, status: str, details: Mapping[str, Any], at: datetime | None = None
    ) -> bool:
        """Move a delivery forward to STATUS (never backwards), count cost on delivery, emit the timeline event."""
        at = at or utcnow()
        if RANK.get(status, 0) <= RANK.get(row.status, 0) and status not in ("opened", "clicked"):
            return False
        values: dict[str, Any] = {}
        if RANK.get(status, 0) > RANK.get(row.status, 0):
            values["status"] = status
        stamp = {"sent": "sent_at", "delivered": "delivered_at", "opened": "opened_at", "clicked": "clicked_at"}
        column = stamp.get(status)
        if column and getattr(row, column) is None:
            values[column] = at
        elif column:
            return False  # a second open or click of the same message is not a new state
        if status in ("opened", "clicked") and row.delivered_at is None:
            values.setdefault("delivered_at", at)  # an open proves delivery
        cost: dict[str, Any] = {}
        if "delivered_at" in values and row.cost_minor is None and row.provider:
            cost = self._cost(conn, row)
            values.update(cost)
        if not values:
            return False
        conn.execute(t.deliveries.update().where(t.deliveries.c.id == row.id).values(**values))
        content = json.loads(row.content)[0] if row.content else {"channel": row.channel, "identifier": None}
        current = next((c for c in json.loads(row.content or "[]") if c["channel"] == row.channel), content)
        request = SendRequest(row.template, broadcast_id=row.broadcast_id, variant=row.variant)
        props = {**details, "provider": row.provider, **cost}
        if current.get("identifier"):
            emit_events(
                conn,
                self.journal,
                [delivery_event(status, current, row.profile_id, row.id, request, at, props)],
                utcnow(),
            )
        return True

    def _cost(self, conn: sa.Connection, row: Any) -> dict[str, Any]:
        p = conn.execute(
            sa.select(t.providers.c.cost_minor, t.providers.c.currency).where(t.providers.c.name == row.provider)
        ).first()
        if p is None:
            return {}
        units = 1
        if row.channel == "sms" and row.content:
            current = next((c for c in json.loads(row.content) if c["channel"] == "sms"), None)
            units = int(current["fields"].get("sms", {}).get("segments", 1)) if current else 1
        return {"cost_minor": int(p.cost_minor) * units, "currency": p.currency}

    def feedback(self, provider: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        """A provider's delivery report: generic {id|message_id, status, bounce?} or Twilio's MessageSid/Status."""
        pid_value = payload.get("MessageSid") or payload.get("message_id") or payload.get("id")
        status = str(payload.get("MessageStatus") or payload.get("status") or "").lower()
        mapping = {
            "delivered": "delivered",
            "read": "opened",
            "opened": "opened",
            "clicked": "clicked",
            "undelivered": "bounced",
            "bounced": "bounced",
            "bounce": "bounced",
            "failed": "failed",
            "complained": "complained",
            "spam": "complained",
            "unsubscribed": "unsubscribed",
            "sent": "sent",
        }
        if not pid_value or status not in mapping:
            raise MessagingError(
                "feedback needs a message id (id, message_id or MessageSid) and a known status "
                f"({', '.join(sorted(mapping))})",
                "invalid_feedback",
            )
        state = mapping[status]
        hard = state == "bounced" and str(payload.get("bounce", payload.get("ErrorCode", "hard"))).lower() != "soft"
        d = t.deliveries
        with self.engine.begin() as conn:
            row = conn.execute(
                sa.select(d).where(
                    sa.or_(d.c.provider_message_id == str(pid_value), d.c.id == str(pid_value)),
                    d.c.provider == provider,
                )
            ).first()
            if row is None:
                raise MessagingError(f"provider {provider} sent no message {pid_value}", "unknown_message", 404)
            details = {"bounce": "hard" if hard else "soft"} if state == "bounced" else {}
            if state == "bounced" and hard:
                from accord.messaging.sender import fall_back_in

                changed = self.record_state_in(conn, row, "bounced", details)
                fall_back_in(self, conn, row, f"hard bounce on {row.channel} reported by {provider}")
            else:
                changed = self.record_state_in(conn, row, state, details)
            if state == "complained":
                self.suppress_in(conn, row.profile_id, "complained", None, f"complaint via {provider}")
        return {"id": row.id, "status": state, "changed": changed}

    def track(self, kind: str, token: str, index: int | None = None) -> str | None:
        """An open pixel or a click (link INDEX of the message): record it; for a click return where to go."""
        try:
            delivery_id = signing.verify_value(self.secret, "track", token.removesuffix(".gif"))
        except signing.InvalidToken as exc:
            raise MessagingError(str(exc), "invalid_token", 404) from exc
        url: str | None = None
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(t.deliveries).where(t.deliveries.c.id == delivery_id)).first()
            if row is None:
                raise MessagingError("this message no longer exists", "unknown_delivery", 404)
            if kind == "click":
                links: list[str] = next(
                    (c.get("links", []) for c in json.loads(row.content or "[]") if c.get("links")), []
                )
                if index is None or not 0 <= index < len(links):
                    raise MessagingError("this link is not in the message", "unknown_link", 404)
                url = str(links[index])
            self.record_state_in(conn, row, "opened" if kind == "open" else "clicked", {"url": url} if url else {})
        return url


OUTBOX_COLUMNS = (
    "id",
    "idempotency_key",
    "profile_id",
    "broadcast_id",
    "template",
    "purpose",
    "kind",
    "tags",
    "channel",
    "locale",
    "variant",
    "content",
    "status",
    "reason",
    "due_at",
    "created_at",
    "attempts",
)
_SQLITE_OUTBOX = (
    f"INSERT INTO msg_deliveries ({', '.join(OUTBOX_COLUMNS)}) VALUES ({', '.join('?' for _ in OUTBOX_COLUMNS)}) "
    "ON CONFLICT (idempotency_key) DO NOTHING"
)
_encode_json = msgspec.json.Encoder().encode
_SQLITE_TIMES: dict[datetime, str] = {}


def _sqlite_time(value: datetime) -> str:
    """A UTC datetime as SQLAlchemy stores it in SQLite (planned rows share a few due times: formatted once)."""
    text = _SQLITE_TIMES.get(value)
    if text is None:
        if len(_SQLITE_TIMES) > 4096:
            _SQLITE_TIMES.clear()
        text = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        _SQLITE_TIMES[value] = text
    return text


_SQLITE_HISTORY = (
    # INDEXED BY: with a JSON list the planner would pick the (status, due_at) index and scan every queued message
    "SELECT profile_id, due_at, channel, tags FROM msg_deliveries INDEXED BY ix_msg_deliveries_profile_id_due_at "
    "WHERE profile_id IN (SELECT value FROM json_each(?)) "
    f"AND kind = '{MARKETING}' AND status IN ({', '.join(repr(s) for s in LIVE)}) AND due_at > ? AND due_at < ?"
)


@lru_cache(maxsize=65536)
def _parse_sqlite_time(text: str) -> datetime:
    """Inverse of _sqlite_time (planned messages share few due times)."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def insert_deliveries(conn: sa.Connection, rows: Sequence[tuple[Any, ...]]) -> int:
    """Insert outbox rows (values in OUTBOX_COLUMNS order), skipping idempotency keys already present; the number
    inserted. On SQLite one executemany straight on the driver (no per-row type processing)."""
    if conn.dialect.name == "sqlite":
        params = [(*r[:14], _sqlite_time(r[14]), _sqlite_time(r[15]), r[16]) for r in rows]
        return int(conn.exec_driver_sql(_SQLITE_OUTBOX, params).rowcount)
    insert = _insert(conn)(t.deliveries).on_conflict_do_nothing(index_elements=["idempotency_key"])
    return int(conn.execute(insert, [dict(zip(OUTBOX_COLUMNS, r, strict=True)) for r in rows]).rowcount)


def emit_events(conn: sa.Connection, journal: Journal, events: Sequence[Mapping[str, Any]], at: datetime) -> None:
    """Append delivery events to the journal in CONN's transaction, in slices the intake accepts."""
    for start in range(0, len(events), 2000):
        emit(conn, journal, SOURCE_NAME, "other", events[start : start + 2000], at)


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PAIRS = [a + b for a in _CROCKFORD for b in _CROCKFORD]  # every 10-bit value as two Crockford characters
_ULID_TIME: list[Any] = [-1, ""]


def fast_ulid() -> str:
    """A ULID (48-bit millisecond time + 80 random bits, Crockford base32) without per-id big-integer encoding:
    the time part is encoded once per millisecond, the random part as eight 10-bit table lookups."""
    ms = time.time_ns() // 1_000_000
    if ms != _ULID_TIME[0]:
        chars = []
        value = ms
        for _ in range(10):
            value, rem = divmod(value, 32)
            chars.append(_CROCKFORD[rem])
        _ULID_TIME[0], _ULID_TIME[1] = ms, "".join(reversed(chars))
    r = int.from_bytes(os.urandom(10), "big")
    p = _PAIRS
    return (
        str(_ULID_TIME[1])
        + p[r >> 70]
        + p[(r >> 60) & 1023]
        + p[(r >> 50) & 1023]
        + p[(r >> 40) & 1023]
        + p[(r >> 30) & 1023]
        + p[(r >> 20) & 1023]
        + p[(r >> 10) & 1023]
        + p[r & 1023]
    )


def _address(recipient: Recipient, channel: str) -> tuple[str, str | None]:
    for id_type in ADDRESS_TYPES.get(channel, ()):
        value = recipient.first(id_type)
        if value:
            return id_type, value
    return "", None


def recipient_name(traits: Mapping[str, Any]) -> str:
    """The name a letter is addressed to or an agent asks for: `name`, else first and last name."""
    name = traits.get("name")
    if isinstance(name, str) and name.strip():
        return name.strip()
    parts = [traits.get(k) for k in ("first_name", "firstName", "last_name", "lastName")]
    return " ".join(p.strip() for p in parts if isinstance(p, str) and p.strip())


def delivery_event(
    status: str,
    content: Mapping[str, Any],
    profile_id: str,
    delivery_id: str,
    request: SendRequest,
    at: datetime,
    props: Mapping[str, Any],
) -> dict[str, Any]:
    id_type, _, value = str(content["identifier"]).partition(":")
    channel = content["channel"]
    return {
        "type": "track",
        "messageId": f"{delivery_id}-{status}",  # one event per delivery state, even if recorded twice
        "event": EVENT_NAMES[status],
        "timestamp": at.isoformat(),
        "context": {
            "channel": TIMELINE_CHANNEL.get(channel, channel),
            "externalIds": [{"type": id_type, "id": value, "collection": "users"}],
        },
        "properties": {
            "delivery_id": delivery_id,
            "template": request.template,
            "message_channel": channel,
            "broadcast_id": request.broadcast_id,
            "variant": request.variant,
            **{k: v for k, v in props.items() if v is not None},
        },
    }


def delivery_view(row: Any, with_content: bool = False) -> dict[str, Any]:
    """JSON-ready form of a delivery row."""
    out = {
        "id": row.id,
        "idempotency_key": row.idempotency_key,
        "profile_id": row.profile_id,
        "broadcast_id": row.broadcast_id,
        "template": row.template,
        "purpose": row.purpose,
        "kind": row.kind,
        "channel": row.channel,
        "locale": row.locale,
        "variant": row.variant,
        "status": row.status,
        "reason": row.reason,
        "due_at": row.due_at.isoformat(),
        "attempts": row.attempts,
        "provider": row.provider,
        "sent_at": row.sent_at.isoformat() if row.sent_at else None,
        "delivered_at": row.delivered_at.isoformat() if row.delivered_at else None,
        "cost_minor": row.cost_minor,
        "currency": row.currency,
        "error": row.error,
    }
    if with_content:
        out["content"] = json.loads(row.content) if row.content else []
    return out
