"""Users domain on SQLite and PostgreSQL: accounts, Argon2 hashes, sessions, roles; and `accord users add`."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from accord.storage import create_state_engine, migrate, utcnow
from accord.users import service as users
from accord.users.roles import Permission, Role, allows, may_open_store
from accord.users.tables import user_sessions
from accord.users.tables import users as users_table


@pytest.fixture
def engine(state_url: str) -> sa.Engine:
    eng = create_state_engine(state_url)
    migrate(eng)
    yield eng
    eng.dispose()


def test_add_user_stores_an_argon2_hash_and_authenticates(engine: sa.Engine) -> None:
    user = users.add_user(engine, "Ann@Example.com ", "correct horse", "marketer")
    assert user.email == "ann@example.com" and user.role is Role.marketer
    with engine.connect() as conn:
        stored = conn.execute(sa.select(users_table.c.password_hash)).scalar_one()
    assert stored.startswith("$argon2id$") and "correct horse" not in stored
    assert users.authenticate(engine, "ANN@example.com", "correct horse") == user
    assert users.authenticate(engine, "ann@example.com", "wrong horse!") is None
    assert users.authenticate(engine, "nobody@example.com", "correct horse") is None


@pytest.mark.parametrize(
    ("email", "password", "role", "store", "code"),
    [
        ("not-an-email", "long enough", "marketer", None, "invalid_email"),
        ("a@example.com", "short", "marketer", None, "weak_password"),
        ("a@example.com", "long enough", "boss", None, "invalid_role"),
        ("a@example.com", "long enough", "associate", None, "store_required"),
        ("a@example.com", "long enough", "analyst", "S1", "store_not_allowed"),
    ],
)
def test_bad_accounts_are_refused_with_a_reason(
    engine: sa.Engine, email: str, password: str, role: str, store: str | None, code: str
) -> None:
    with pytest.raises(users.UserError) as info:
        users.add_user(engine, email, password, role, store)
    assert info.value.code == code
    assert users.list_users(engine) == []


def test_duplicate_email_is_refused(engine: sa.Engine) -> None:
    users.add_user(engine, "a@example.com", "long enough", "analyst")
    with pytest.raises(users.UserError, match="already exists"):
        users.add_user(engine, "A@example.com", "another one", "admin")


def test_sessions_open_expire_and_close(engine: sa.Engine) -> None:
    user = users.add_user(engine, "s@example.com", "long enough", "associate", "PL-WAW-01")
    token, session = users.open_session(engine, user)
    found = users.session_for(engine, token)
    assert found is not None and found.user == user and found.csrf_token == session.csrf_token
    with engine.connect() as conn:
        hashes = conn.execute(sa.select(user_sessions.c.token_hash)).scalars().all()
    assert token not in hashes  # only the hash is stored
    assert users.session_for(engine, token, now=utcnow() + users.SESSION_TTL + timedelta(seconds=1)) is None
    assert users.session_for(engine, "forged") is None
    users.close_session(engine, token)
    assert users.session_for(engine, token) is None


def test_locale_setting(engine: sa.Engine) -> None:
    user = users.add_user(engine, "l@example.com", "long enough", "marketer")
    users.set_locale(engine, user.id, "pl")
    assert users.get_user(engine, user.id).locale == "pl"  # type: ignore[union-attr]
    with pytest.raises(users.UserError):
        users.set_locale(engine, user.id, "xx")


def test_role_grants() -> None:
    assert allows(Role.analyst, Permission.read_customers) and not allows(Role.analyst, Permission.change)
    assert not allows(Role.associate, Permission.read_customers)
    assert may_open_store(Role.associate, "S1", "S1") and not may_open_store(Role.associate, "S1", "S2")
    assert may_open_store(Role.marketer, None, "S2")
    assert all(allows(Role.admin, p) for p in Permission)


def test_cli_users_add_reads_the_password_from_stdin(tmp_path: Path) -> None:
    env = {**os.environ, "ACCORD_HOME": str(tmp_path / "home")}
    accord = str(Path(sys.executable).parent / "accord")
    done = subprocess.run(
        [accord, "users", "add", "clerk@example.com", "--role", "associate", "--store", "PL-WAW-01"],
        input="s3cret-pass\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    refused = subprocess.run(
        [accord, "users", "add", "x@example.com", "--role", "associate"],
        input="s3cret-pass\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert refused.returncode == 1 and "--store" in refused.stderr and "Traceback" not in refused.stderr
    engine = create_state_engine(f"sqlite:///{tmp_path / 'home' / 'state.sqlite'}")
    user = users.authenticate(engine, "clerk@example.com", "s3cret-pass")
    engine.dispose()
    assert user is not None and user.role is Role.associate and user.store_id == "PL-WAW-01"
