"""Match records normalised in DuckDB before Splink compares them: folded names and their sound keys, E.164 phone
digits, email local parts, addresses split into street, house numbers and postcode, checked birth dates."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import phonenumbers
import pyarrow as pa

# The fields a match record carries, as read from profiles' traits (see matching.records_sql).
RECORD_FIELDS: tuple[str, ...] = (
    "first_name",
    "last_name",
    "birth_date",
    "address",
    "postcode",
    "city",
    "country",
    "email",
    "phone",
)
# ... and the record sources (comma-separated source ids of the identify events that carried a record id).
RECORD_COLUMNS: tuple[str, ...] = (*RECORD_FIELDS, "record_sources")

# Words that name the kind of street rather than the street ("ul. Długa", "Long Road", "ул. Ленина", "Nørrevej"
# keeps its suffix: it is part of the name), house and flat markers, and Chinese building markers.
_STREET_WORDS = (
    "ul", "ulica", "al", "aleja", "aleje", "os", "osiedle", "pl", "plac", "street", "st", "road", "rd", "avenue",
    "ave", "lane", "ln", "drive", "dr", "flat", "apt", "apartment", "studio", "unit", "ул", "улица", "пр", "пр-т",
    "проспект", "пер", "переулок", "ш", "шоссе", "наб", "бул", "бульвар", "д", "дом", "к", "корп", "кв", "стр",
)  # fmt: skip

# SQL of a folded name: lower case, no accents (Polish ł too), letters and digits only.
_NAME = r"nullif(regexp_replace(strip_accents(replace(lower(trim({c})), 'ł', 'l')), '[^\p{{L}}\p{{N}}]+', '', 'g'), '')"
_TEXT = (
    r"nullif(trim(regexp_replace(strip_accents(replace(lower({c}), 'ł', 'l')), '[^\p{{L}}\p{{N}}]+', ' ', 'g')), '')"
)

# A sound key for Latin-script names (spelling variants and most one-letter slips agree): letters that sound alike
# folded together, vowels and h dropped after the first letter, doubled letters made single. Other scripts keep
# the folded name as their key.
_MACROS = r"""
CREATE OR REPLACE MACRO accord_fold_sounds(s) AS
    translate(
        regexp_replace(regexp_replace(regexp_replace(regexp_replace(regexp_replace(regexp_replace(
            s, 'ph', 'f', 'g'), 'ck', 'k', 'g'), 'sch', 's', 'g'), 'sz', 's', 'g'), 'cz', 'c', 'g'), 'th', 't', 'g'),
        'wzqxyjv', 'wskkiiw');
CREATE OR REPLACE MACRO accord_single_letters(s) AS
    array_to_string(list_filter(string_split(s, ''), lambda ch, i: i = 1 OR ch <> string_split(s, '')[i - 1]), '');
CREATE OR REPLACE MACRO accord_sound_key(s) AS
    CASE WHEN s IS NULL THEN NULL
         WHEN NOT regexp_full_match(s, '[a-z]+') THEN s
         ELSE accord_single_letters(
             left(accord_fold_sounds(s), 1) || regexp_replace(substr(accord_fold_sounds(s), 2), '[aeiouh]', '', 'g'))
    END;
"""

NORMALISE = (
    _MACROS
    + r"""
CREATE OR REPLACE TABLE {out} AS
WITH base AS (
    SELECT
        unique_id,
        {first_name} AS first_name,
        {last_name} AS last_name,
        CAST(try_strptime(left(trim(birth_date), 10), '%Y-%m-%d') AS DATE) AS birth_date,
        {address} AS address,
        nullif(regexp_replace(upper(trim(postcode)), '[^\p{{L}}\p{{N}}]+', '', 'g'), '') AS postcode,
        {city} AS city,
        nullif(upper(trim(country)), '') AS country,
        nullif(regexp_replace(lower(trim(email)), '\+[^@]*@', '@'), '') AS email,
        nullif(regexp_replace(phone, '[^0-9+]+', '', 'g'), '') AS phone_raw,
        CASE WHEN record_sources <> '' THEN string_split(record_sources, ',') END AS record_sources
    FROM {src}
),
-- sound keys of each distinct name once (names repeat: far fewer names than records)
sounds AS (
    SELECT name, accord_sound_key(name) AS sound
    FROM (SELECT first_name AS name FROM base UNION SELECT last_name FROM base)
    WHERE name IS NOT NULL
)
SELECT
    unique_id,
    first_name,
    last_name,
    CASE WHEN first_name IS NOT NULL THEN coalesce(base.country, '') || '|' || first_name END AS first_name_cc,
    CASE WHEN last_name IS NOT NULL THEN coalesce(base.country, '') || '|' || last_name END AS last_name_cc,
    first_sounds.sound AS first_sound,
    last_sounds.sound AS last_sound,
    birth_date,
    address,
    nullif(array_to_string(list_filter(string_split(regexp_replace(address, '\d+', ' ', 'g'), ' '),
        lambda w: w <> '' AND NOT list_contains([{street_words}], w)), ' '), '') AS street,
    nullif(array_to_string(regexp_extract_all(address, '\d+'), ' '), '') AS house,
    postcode,
    city,
    base.country,
    email,
    nullif(split_part(replace(email, '.', ''), '@', 1), '') AS email_user,
    CASE
        WHEN phone_raw LIKE '+%' THEN replace(phone_raw, '+', '')
        WHEN phone_raw LIKE '00%' THEN substr(phone_raw, 3)
        WHEN cc.code IS NOT NULL THEN cc.code || regexp_replace(phone_raw, '^' || cc.trunk, '')
        ELSE phone_raw
    END AS phone,
    record_sources
FROM base
    LEFT JOIN accord_calling_codes AS cc ON cc.region = base.country
    LEFT JOIN sounds AS first_sounds ON first_sounds.name = base.first_name
    LEFT JOIN sounds AS last_sounds ON last_sounds.name = base.last_name
WHERE coalesce(first_name, last_name) IS NOT NULL
  -- a name alone never tells two people apart: a record needs something more to be matched
  AND coalesce(CAST(birth_date AS VARCHAR), address, postcode, city, email, phone_raw) IS NOT NULL
"""
)


def normalise_sql(out: str, src: str) -> str:
    """The statements that make table OUT of normalised match records from raw records in SRC."""
    return NORMALISE.format(
        out=out,
        src=src,
        first_name=_NAME.format(c="first_name"),
        last_name=_NAME.format(c="last_name"),
        address=_TEXT.format(c="address"),
        city=_TEXT.format(c="city"),
        street_words=", ".join(f"'{w}'" for w in _STREET_WORDS),
    )


@lru_cache(maxsize=1)
def calling_codes() -> list[tuple[str, str, str]]:
    """(country, calling code, national trunk prefix) for every region phonenumbers knows."""
    rows = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
        trunk = (meta.national_prefix if meta is not None else None) or ""
        rows.append((region, str(phonenumbers.country_code_for_region(region)), trunk))
    return rows


def normalise(con: Any, src: str, out: str) -> None:
    """Make table OUT of normalised match records from the raw records in SRC, on DuckDB connection CON."""
    codes = list(zip(*calling_codes(), strict=True))
    con.register("accord_calling_codes", pa.table({"region": codes[0], "code": codes[1], "trunk": codes[2]}))
    try:
        for statement in normalise_sql(out, src).split(";"):
            if statement.strip():
                con.execute(statement).fetchall()
    finally:
        con.unregister("accord_calling_codes")
