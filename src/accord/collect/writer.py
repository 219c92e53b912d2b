"""Group commit for the HTTP intake: many requests' messages share one durable journal transaction."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from accord.collect.journal import Journal, JournalBatch

log = logging.getLogger(__name__)
MAX_GROUP_ROWS = 20_000
CHECKPOINT_BYTES = 4 << 20  # journalled bytes between write-ahead-log checkpoints (SQLite's default is ~4 MB)


class JournalWriter:
    """Accepts rows from request handlers and answers each once its rows are committed (fsync'd)."""

    def __init__(self, journal: Journal, on_commit: Callable[[], None] | None = None) -> None:
        self.journal = journal
        self.on_commit = on_commit
        self._pending: list[tuple[JournalBatch, asyncio.Future[None]]] = []
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal")
        self._checkpointer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal-checkpoint")
        self._checkpoint: Future[None] | None = None
        self._since_checkpoint = 0

    async def start(self) -> None:
        """Start the commit loop on the running event loop."""
        self._wakeup = asyncio.Event()
        self.journal.defer_checkpoints()  # checkpoints run on their own thread, not inside a group commit
        self._task = asyncio.create_task(self._run())

    async def submit(self, batch: JournalBatch) -> None:
        """Wait until BATCH is durably committed."""
        if not batch.items:
            return
        if self._wakeup is None:
            raise RuntimeError("journal writer is not started")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((batch, future))
        self._wakeup.set()
        await future

    async def _run(self) -> None:
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                group: list[tuple[JournalBatch, asyncio.Future[None]]] = []
                size = 0
                while self._pending and (not group or size + len(self._pending[0][0].items) <= MAX_GROUP_ROWS):
                    item = self._pending.pop(0)
                    group.append(item)
                    size += len(item[0].items)
                try:
                    await loop.run_in_executor(
                        self._executor, self.journal.append_groups, [batch for batch, _ in group]
                    )
                except Exception as exc:  # a failed commit fails exactly the requests in it
                    for _, future in group:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for _, future in group:
                    if not future.done():
                        future.set_result(None)
                if self.on_commit:
                    self.on_commit()
                self._since_checkpoint += sum(len(batch.body) for batch, _ in group)
                if self._since_checkpoint >= CHECKPOINT_BYTES and (self._checkpoint is None or self._checkpoint.done()):
                    self._since_checkpoint = 0
                    self._checkpoint = self._checkpointer.submit(self._run_checkpoint)

    def _run_checkpoint(self) -> None:
        try:
            self.journal.checkpoint()
        except Exception:  # a checkpoint that fails is retried after the next 4 MB; nothing is lost
            log.exception("write-ahead log checkpoint failed")

    async def stop(self) -> None:
        """Finish what is pending, then stop."""
        while self._pending:
            await asyncio.sleep(0.01)
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._executor.shutdown(wait=True)
        self._checkpointer.shutdown(wait=True)
