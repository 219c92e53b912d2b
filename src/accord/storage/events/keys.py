"""Profile keys: a unique integer per profile id in the DuckDB event log, so that the events of many profiles are
found by an integer probe instead of a VARCHAR one.

Finding the events of 20,000 of 1,000,000 profiles among 20,000,000 events costs DuckDB ~0.1 s by `profile_key`
and ~0.5 s by `profile_id` (decoding the near-unique VARCHAR of every matching vector is the cost, not the probe).
A profile's key is DuckDB's `hash()` of its id, unless another id already had that value when the profile was
first loaded: then the hash of the id and a counter, recorded in `profile_key_clashes` (astronomically rare, so
that table stays tiny and is read by every query that maps ids to keys: KEY_OF). `profile_keys` holds every (id,
key) given so far and is only ever probed by the integer key. Every write of the log keeps `events.profile_key`
equal to the key of `events.profile_id`: loads, identity changes, and the repair on open of rows written without
it (older files, bulk fills by SQL).
"""

from __future__ import annotations

import duckdb

SCHEMA = """
CREATE TABLE IF NOT EXISTS profile_keys (profile_id VARCHAR NOT NULL, profile_key UBIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS profile_key_clashes (profile_id VARCHAR NOT NULL, profile_key UBIGINT NOT NULL);
"""


def key_of(ids: str, column: str = "profile_id") -> str:
    """SQL: the relation IDS (with a COLUMN of profile ids) with each id's key as `profile_key`."""
    return (
        f"SELECT i.*, coalesce(c.profile_key, hash(i.{column})) AS profile_key FROM ({ids}) AS i "
        f"LEFT JOIN profile_key_clashes AS c ON c.profile_id = i.{column}"
    )


def assign(cur: duckdb.DuckDBPyConnection, profile_ids_sql: str) -> None:
    """Give every profile id that PROFILE_IDS_SQL returns (a query with a `profile_id` column) and that has no key
    yet its unique key (inside the caller's transaction)."""
    cur.execute(
        "CREATE OR REPLACE TEMP TABLE new_keys AS SELECT c.profile_id, c.h AS profile_key, k.profile_id AS holder "
        f"FROM (SELECT DISTINCT profile_id, hash(profile_id) AS h FROM ({profile_ids_sql}) AS s "
        "WHERE profile_id IS NOT NULL) AS c LEFT JOIN profile_keys AS k ON k.profile_key = c.h "
        "WHERE (k.profile_id IS NULL OR k.profile_id <> c.profile_id) "
        "AND c.profile_id NOT IN (SELECT profile_id FROM profile_key_clashes)"
    )
    clashing = cur.execute(
        "SELECT profile_id FROM new_keys WHERE holder IS NOT NULL "
        "OR profile_key IN (SELECT profile_key FROM new_keys GROUP BY profile_key HAVING count(*) > 1) "
        "ORDER BY profile_id"
    ).fetchall()
    for (profile_id,) in clashing:  # (two new ids with one hash: neither keeps it, simplest and as rare)
        n = 1
        while True:  # another id has this hash: the first free hash of the id and a counter
            row = cur.execute(
                "SELECT hash(? || ':' || ?::VARCHAR) AS k, k IN (SELECT profile_key FROM profile_keys) "
                "OR k IN (SELECT profile_key FROM new_keys)",
                [profile_id, n],
            ).fetchone()
            assert row is not None
            if not row[1]:
                cur.execute("UPDATE new_keys SET profile_key = ? WHERE profile_id = ?", [row[0], profile_id])
                cur.execute("INSERT INTO profile_key_clashes VALUES (?, ?)", [profile_id, row[0]])
                break
            n += 1
    cur.execute("INSERT INTO profile_keys SELECT profile_id, profile_key FROM new_keys")
    cur.execute("DROP TABLE new_keys")


def repair(cur: duckdb.DuckDBPyConnection) -> None:
    """Key the events written without a key: a file from before the keys, a bulk fill by SQL."""
    missing = cur.execute("SELECT count(*) FROM events WHERE profile_id IS NOT NULL AND profile_key IS NULL").fetchone()
    if not missing or not missing[0]:
        return
    assign(cur, "SELECT profile_id FROM events WHERE profile_key IS NULL")
    cur.execute(
        "UPDATE events SET profile_key = hash(profile_id) WHERE profile_key IS NULL AND profile_id IS NOT NULL "
        "AND profile_id NOT IN (SELECT profile_id FROM profile_key_clashes)"
    )
    cur.execute(
        "UPDATE events SET profile_key = c.profile_key FROM profile_key_clashes AS c "
        "WHERE events.profile_id = c.profile_id AND events.profile_key IS DISTINCT FROM c.profile_key"
    )
