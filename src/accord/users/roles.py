"""Roles and what each may do: admins and marketers change, analysts read, associates see their store only."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """A user's role."""

    admin = "admin"
    marketer = "marketer"
    analyst = "analyst"
    associate = "associate"


class Permission(StrEnum):
    """Something a page or action needs."""

    read_customers = "read_customers"  # marketer pages: overview, customer search and profiles
    change = "change"  # any write: unmerge, segments, broadcasts, ...
    any_store = "any_store"  # open any store's associate screen
    own_store = "own_store"  # open the associate screen of the user's own store
    manage_users = "manage_users"
    serve_customer = "serve_customer"  # act for a customer at a store: redeem a coupon


GRANTS: dict[Role, frozenset[Permission]] = {
    Role.admin: frozenset(Permission),
    Role.marketer: frozenset(
        {Permission.read_customers, Permission.change, Permission.any_store, Permission.serve_customer}
    ),
    Role.analyst: frozenset({Permission.read_customers, Permission.any_store}),
    Role.associate: frozenset({Permission.own_store, Permission.serve_customer}),
}


def allows(role: Role, permission: Permission) -> bool:
    """Whether ROLE carries PERMISSION."""
    return permission in GRANTS[role]


def may_open_store(role: Role, own_store: str | None, store_id: str) -> bool:
    """Associates open only their own store's screen; roles with any_store open every store."""
    if allows(role, Permission.any_store):
        return True
    return allows(role, Permission.own_store) and own_store is not None and own_store == store_id
