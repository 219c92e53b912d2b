"""File imports for offline channels: JSONL events, CRM customer exports and POS receipts, sent to an ImportSink."""

from accord.collect.importers.base import (
    BoundedSink,
    ImportFailed,
    ImportFileError,
    ImportReport,
    default_rejects_path,
)
from accord.collect.importers.orders import OrderColumns, import_orders

__all__ = [
    "BoundedSink",
    "ImportFailed",
    "ImportFileError",
    "ImportReport",
    "OrderColumns",
    "default_rejects_path",
    "import_orders",
]
