"""Normalisation of match records in DuckDB (sound keys, streets and house numbers, E.164 phone digits, email
local parts, birth dates) and the contested-pair guard."""

from __future__ import annotations

from typing import Any

import duckdb
import pyarrow as pa

from accord.identity.match_guard import contested
from accord.identity.match_records import RECORD_COLUMNS, normalise
from accord.identity.splink_model import COMPARED, MatchModel, ScoredPair, is_current


def normalised(*rows: dict[str, str]) -> dict[str, dict[str, Any]]:
    con = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False})
    columns = {"unique_id": [str(i) for i in range(len(rows))]}
    columns |= {name: [row.get(name) for row in rows] for name in RECORD_COLUMNS}
    con.register("raw", pa.table(columns, schema=pa.schema([(n, pa.string()) for n in columns])))
    normalise(con, "raw", "out")
    result = {r["unique_id"]: r for r in con.sql("SELECT * FROM out").to_arrow_table().to_pylist()}
    con.close()
    return result


def test_names_fold_and_sound_alike() -> None:
    out = normalised(
        {"first_name": " Łukasz ", "last_name": "Kowalski", "city": "Kraków"},
        {"first_name": "Lukasz", "last_name": "Kowalsky", "city": "Krakow"},
        {"first_name": "Philip", "last_name": "Schmitt", "city": "X"},
        {"first_name": "Filip", "last_name": "Shmit", "city": "X"},
        {"first_name": "Ольга", "last_name": "Иванова", "city": "Москва"},
        {"first_name": "Anna"},  # a name alone: not a match record
    )
    assert set(out) == {"0", "1", "2", "3", "4"}
    assert out["0"]["first_name"] == out["1"]["first_name"] == "lukasz"
    assert out["0"]["first_name_cc"] == "|lukasz" and out["0"]["city"] == out["1"]["city"] == "krakow"
    assert out["0"]["last_sound"] == out["1"]["last_sound"] != out["0"]["last_name"]
    assert out["2"]["first_sound"] == out["3"]["first_sound"] and out["2"]["last_sound"] == out["3"]["last_sound"]
    assert out["0"]["first_sound"] != out["2"]["first_sound"]
    assert out["4"]["first_sound"] == out["4"]["first_name"] == "ольга"  # other scripts keep the folded name


def test_addresses_phones_emails_and_dates() -> None:
    out = normalised(
        {"last_name": "A", "address": "ul. Długa 12/3", "postcode": "00-950", "phone": "601 234 567", "country": "PL"},
        {"last_name": "A", "address": "Dluga 12 3", "postcode": "00 950", "phone": "+48 601-234-567"},
        {"last_name": "B", "address": "Flat 4 Long Road", "phone": "07700 900123", "country": "GB"},
        {"last_name": "C", "email": " Jan.Kowalski+shop@Example.com ", "birth_date": "1985-03-07T00:00:00Z"},
        {"last_name": "D", "email": "jankowalski@example.com", "birth_date": "1985-02-30"},
    )
    assert out["0"]["street"] == out["1"]["street"] == "dluga"
    assert out["0"]["house"] == out["1"]["house"] == "12 3" and out["0"]["postcode"] == out["1"]["postcode"]
    assert out["0"]["phone"] == out["1"]["phone"] == "48601234567"
    assert out["2"]["street"] == "long" and out["2"]["house"] == "4" and out["2"]["phone"] == "447700900123"
    assert out["3"]["email"] == "jan.kowalski@example.com" and out["3"]["email_user"] == out["4"]["email_user"]
    assert str(out["3"]["birth_date"]) == "1985-03-07" and out["4"]["birth_date"] is None


def test_the_model_database_fetches_no_extension() -> None:
    records = pa.table({name: pa.array(["x", "y"], pa.string()) for name in ("unique_id", *RECORD_COLUMNS)})
    model = MatchModel(records)
    try:
        setting = model.con.execute("SELECT current_setting('autoinstall_known_extensions')").fetchone()
        assert setting is not None and setting[0] is False
    finally:
        model.close()


def pair(a: str, b: str, p: float = 0.99) -> ScoredPair:
    return ScoredPair(a, b, p, ("first_name",))


def test_a_record_that_fits_two_people_contests_both_pairs() -> None:
    # L fits A and B, who are not one person: both pairs are contested; C-D stands alone
    assert contested([pair("L", "A"), pair("B", "L"), pair("C", "D")]) == {("L", "A"), ("B", "L")}
    # three records of one person, all paired with each other: nothing contested
    assert contested([pair("A", "B"), pair("B", "C"), pair("A", "C")]) == set()
    # a chain A-B-C without A-C: the record in the middle fits two that do not fit each other
    assert contested([pair("A", "B"), pair("B", "C")]) == {("A", "B"), ("B", "C")}


def test_a_stored_model_of_another_version_is_not_reused() -> None:
    current = {"comparisons": [{"output_column_name": name} for name in reversed(COMPARED)]}
    older = {"comparisons": [{"output_column_name": name} for name in ("first_name", "last_name", "email")]}
    assert is_current(current) and not is_current(older) and not is_current({})
