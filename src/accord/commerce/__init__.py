"""Commerce: stores and hours, catalog and channel prices, inventory and reservations, orders, pickup, returns."""
