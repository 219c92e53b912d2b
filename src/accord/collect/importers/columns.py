"""Column mapping: which header column holds which field, with defaults that may be absent and names that must not."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from accord.collect.importers.base import ImportFileError


def resolve_columns(
    chosen: Mapping[str, str | None], header: Sequence[str], required: Sequence[str], path: Path
) -> dict[str, int]:
    """Field name -> column index (-1 when absent), for the column CHOSEN per field.

    A field left as None uses the column of the same name when the header has it; a field set to a column
    name needs that column (a typo must not silently drop data); a field set to "" is switched off.
    """
    positions = header_positions(header, path)
    result: dict[str, int] = {}
    for name, column in chosen.items():
        if column is None:
            result[name] = positions.get(name, -1)
        elif column == "":
            result[name] = -1
        elif column in positions:
            result[name] = positions[column]
        else:
            raise ImportFileError(
                f"{path.name}: column {column!r} (for {name}) is not in the header; columns: {', '.join(header)}"
            )
    missing = [name for name in required if result.get(name, -1) < 0]
    if missing:
        raise ImportFileError(
            f"{path.name}: the header has no column for {', '.join(missing)} "
            f"(columns: {', '.join(header)}); map them with the column options"
        )
    return result


def header_positions(header: Sequence[str], path: Path) -> dict[str, int]:
    """Column name -> index; duplicate names are an error."""
    positions: dict[str, int] = {}
    for i, name in enumerate(header):
        name = name.strip()
        if name in positions and name:
            raise ImportFileError(f"{path.name}: the header names column {name!r} twice")
        positions[name] = i
    return positions


def parse_pairs(pairs: Sequence[str] | Mapping[str, str] | None, what: str) -> dict[str, str]:
    """'field=column' options to a dict (ImportFileError on a malformed one)."""
    if pairs is None:
        return {}
    if isinstance(pairs, Mapping):
        return dict(pairs)
    result: dict[str, str] = {}
    for pair in pairs:
        name, sep, column = pair.partition("=")
        if not sep or not name.strip():
            raise ImportFileError(f"--map {pair!r}: write {what}=column")
        result[name.strip()] = column.strip()
    return result
