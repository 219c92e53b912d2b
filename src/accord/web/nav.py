"""The navigation registry: each domain's pages add one entry; the layout shows the entries the user may open."""

from __future__ import annotations

from dataclasses import dataclass

from accord.users.roles import Permission, Role, allows


@dataclass(frozen=True)
class NavItem:
    """One entry of the main navigation: PATH, LABEL (an English msgid, translated at render), who sees it."""

    key: str
    path: str
    label: str
    permission: Permission
    order: int = 100


NAV: dict[str, NavItem] = {}


def register(item: NavItem) -> None:
    """Add (or replace) a navigation entry."""
    NAV[item.key] = item


def visible(role: Role) -> list[NavItem]:
    """The entries a role may open, in order."""
    return sorted((i for i in NAV.values() if allows(role, i.permission)), key=lambda i: (i.order, i.key))


register(NavItem("overview", "/", "Overview", Permission.read_customers, 10))
register(NavItem("customers", "/customers", "Customers", Permission.read_customers, 20))
register(NavItem("segments", "/segments", "Segments", Permission.read_customers, 30))
register(NavItem("journeys", "/journeys", "Journeys", Permission.read_customers, 40))
register(NavItem("messages", "/messages", "Messages", Permission.read_customers, 50))
register(NavItem("analytics", "/analytics", "Analytics", Permission.read_customers, 60))
register(NavItem("commerce", "/commerce", "Commerce", Permission.read_customers, 70))
