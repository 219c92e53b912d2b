"""File imports for offline channels: JSONL events, CRM customer exports and POS receipts, sent to an ImportSink.

Each importer streams its file, turns rows into Segment messages with a stable ``messageId`` (re-importing the
same file adds nothing), sends them in chunks, writes bad rows to ``<input>.rejects.csv`` (``row,code,reason,
raw``) and returns an ImportReport whose row and message counts add up.
"""

from accord.collect.importers.base import (
    BoundedSink,
    ImportFailed,
    ImportFileError,
    ImportReport,
    default_rejects_path,
)
from accord.collect.importers.customers import CustomerColumns, import_customers
from accord.collect.importers.events import import_events
from accord.collect.importers.orders import OrderColumns, import_orders

__all__ = [
    "BoundedSink",
    "CustomerColumns",
    "ImportFailed",
    "ImportFileError",
    "ImportReport",
    "OrderColumns",
    "default_rejects_path",
    "import_customers",
    "import_events",
    "import_orders",
]
