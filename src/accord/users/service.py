"""The users domain's one write path: add users, check passwords, open and close sessions, set the language."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email

from accord.storage import new_id, utcnow
from accord.users.roles import Role
from accord.users.tables import user_sessions, users

SESSION_TTL = timedelta(hours=12)
MIN_PASSWORD = 8
LOCALES = ("en", "pl")

_hasher = PasswordHasher()  # Argon2id with argon2-cffi's RFC 9106 "low memory" defaults
_DUMMY_HASH = _hasher.hash("not-a-password-" + secrets.token_hex(8))  # equalises timing for unknown emails


class UserError(ValueError):
    """A user-caused error (bad email, weak password, unknown role, duplicate, missing store)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class User:
    """An account as the faces see it (never the hash)."""

    id: str
    email: str
    role: Role
    store_id: str | None
    locale: str | None
    created_at: datetime


@dataclass(frozen=True)
class Session:
    """A live login session: its user and the CSRF token every form of the session carries."""

    user: User
    csrf_token: str
    expires_at: datetime


def _user(row: sa.Row[Any]) -> User:
    m = row._mapping
    return User(m["id"], m["email"], Role(m["role"]), m["store_id"], m["locale"], m["created_at"])


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def normalise_email(email: str) -> str:
    """Validated, lower-cased email (raises UserError)."""
    try:
        return validate_email(email.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise UserError("invalid_email", f"{email!r} is not a valid email address: {exc}") from exc


def add_user(
    engine: sa.Engine, email: str, password: str, role: str, store_id: str | None = None, locale: str | None = None
) -> User:
    """Create an account; associates must name their store, other roles must not."""
    address = normalise_email(email)
    try:
        kind = Role(role)
    except ValueError as exc:
        raise UserError(
            "invalid_role", f"role must be one of {', '.join(r.value for r in Role)}, got {role!r}"
        ) from exc
    if kind is Role.associate and not (store_id and store_id.strip()):
        raise UserError("store_required", "an associate needs --store STORE_ID (the store whose screen they use)")
    if kind is not Role.associate and store_id:
        raise UserError("store_not_allowed", "only associates are bound to a store")
    if len(password) < MIN_PASSWORD:
        raise UserError("weak_password", f"the password must have at least {MIN_PASSWORD} characters")
    if locale is not None and locale not in LOCALES:
        raise UserError("invalid_locale", f"locale must be one of {', '.join(LOCALES)}")
    user = User(new_id(), address, kind, store_id.strip() if store_id else None, locale, utcnow())
    row = {
        "id": user.id,
        "email": address,
        "password_hash": _hasher.hash(password),
        "role": kind.value,
        "store_id": user.store_id,
        "locale": locale,
        "active": True,
        "created_at": user.created_at,
    }
    with engine.begin() as conn:
        if conn.execute(sa.select(users.c.id).where(users.c.email == address)).first() is not None:
            raise UserError("user_exists", f"a user {address} already exists")
        conn.execute(users.insert().values(**row))
    return user


def list_users(engine: sa.Engine) -> list[User]:
    """All accounts, by email."""
    with engine.connect() as conn:
        return [_user(r) for r in conn.execute(sa.select(users).order_by(users.c.email))]


def get_user(engine: sa.Engine, user_id: str) -> User | None:
    """One account by id."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(users).where(users.c.id == user_id)).first()
    return _user(row) if row else None


def authenticate(engine: sa.Engine, email: str, password: str) -> User | None:
    """The active user with this email and password, else None (same work whether or not the email exists)."""
    try:
        address = normalise_email(email)
    except UserError:
        address = email.strip().lower()
    with engine.connect() as conn:
        row = conn.execute(sa.select(users).where(users.c.email == address, users.c.active.is_(True))).first()
    stored = row._mapping["password_hash"] if row else _DUMMY_HASH
    try:
        _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return None
    if row is None:
        return None
    if _hasher.check_needs_rehash(stored):
        with engine.begin() as conn:
            conn.execute(
                users.update().where(users.c.id == row._mapping["id"]).values(password_hash=_hasher.hash(password))
            )
    return _user(row)


def open_session(engine: sa.Engine, user: User, now: datetime | None = None) -> tuple[str, Session]:
    """Start a session for USER: returns the cookie token (kept only hashed) and the session."""
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    now = now or utcnow()
    expires = now + SESSION_TTL
    with engine.begin() as conn:
        conn.execute(user_sessions.delete().where(user_sessions.c.expires_at < now))  # sweep expired sessions
        conn.execute(
            user_sessions.insert().values(
                token_hash=_token_hash(token), user_id=user.id, csrf_token=csrf, created_at=now, expires_at=expires
            )
        )
    return token, Session(user, csrf, expires)


def session_for(engine: sa.Engine, token: str, now: datetime | None = None) -> Session | None:
    """The live session of a cookie token, or None when unknown, expired, or its user is disabled."""
    if not token:
        return None
    now = now or utcnow()
    query = (
        sa.select(users, user_sessions.c.csrf_token, user_sessions.c.expires_at)
        .join(user_sessions, user_sessions.c.user_id == users.c.id)
        .where(user_sessions.c.token_hash == _token_hash(token), users.c.active.is_(True))
    )
    with engine.connect() as conn:
        row = conn.execute(query).first()
    if row is None or row._mapping["expires_at"] <= now:
        return None
    return Session(_user(row), row._mapping["csrf_token"], row._mapping["expires_at"])


def close_session(engine: sa.Engine, token: str) -> None:
    """Log out: the token no longer opens anything."""
    with engine.begin() as conn:
        conn.execute(user_sessions.delete().where(user_sessions.c.token_hash == _token_hash(token)))


def set_locale(engine: sa.Engine, user_id: str, locale: str | None) -> None:
    """The user's UI language (None: follow the browser)."""
    if locale is not None and locale not in LOCALES:
        raise UserError("invalid_locale", f"locale must be one of {', '.join(LOCALES)}")
    with engine.begin() as conn:
        conn.execute(users.update().where(users.c.id == user_id).values(locale=locale))
