"""Building the consent and messaging services from settings (used by the composition root and the CLI)."""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from accord.collect.journal import Journal
from accord.config import Settings
from accord.consent.service import Consents
from accord.consent.signing import load_secret
from accord.identity.rules import IdentityRules
from accord.messaging.policy import PolicyConfig
from accord.messaging.recipients import AudienceResolver, RecipientLoader, static_loader, store_loader
from accord.messaging.service import Messaging
from accord.storage.events import EventStore


def public_url(settings: Settings) -> str:
    """Base URL of links in messages: ACCORD_PUBLIC_URL, else the server's own address."""
    return os.environ.get("ACCORD_PUBLIC_URL") or f"http://{settings.host}:{settings.port}"


def consents_for(settings: Settings, state: sa.Engine, journal: Journal, rules: IdentityRules) -> Consents:
    """The consent service of an installation."""
    secret = load_secret(settings.home / "signing_key", os.environ.get("ACCORD_SECRET_KEY"))
    return Consents(state, journal, rules, secret, public_url(settings))


def policy_from_env() -> PolicyConfig:
    """ACCORD_MESSAGING_POLICY: inline JSON or a path to a JSON file (see docs/messaging.md); defaults otherwise."""
    raw = os.environ.get("ACCORD_MESSAGING_POLICY", "").strip()
    if not raw:
        return PolicyConfig()
    data: dict[str, Any] = json.loads(raw if raw.startswith("{") else Path(raw).read_text())
    return PolicyConfig.from_dict(data)


def segment_resolver(state: sa.Engine) -> AudienceResolver | None:
    """accord.segments.service.member_ids bound to the state store, when the segments domain is installed."""
    try:
        module = importlib.import_module("accord.segments.service")
    except ImportError:
        return None
    member_ids = module.member_ids

    def resolve(name: str) -> list[str]:
        return list(member_ids(state, name))

    return resolve


def messaging_for(
    settings: Settings,
    state: sa.Engine,
    journal: Journal,
    consents: Consents,
    events: EventStore | None,
) -> Messaging:
    """The messaging service; without an event store (a sender-only process) recipients carry no traits."""
    loader: RecipientLoader = store_loader(state, events) if events is not None else static_loader([])
    return Messaging(state, journal, consents, loader, policy_from_env(), segment_resolver(state))
