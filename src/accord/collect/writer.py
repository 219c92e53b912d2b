"""Group commit for the HTTP intake: many requests' messages share one durable journal transaction."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from accord.collect.journal import Journal, JournalRow

MAX_GROUP_ROWS = 20_000


class JournalWriter:
    """Accepts rows from request handlers and answers each once its rows are committed (fsync'd)."""

    def __init__(self, journal: Journal, on_commit: Callable[[], None] | None = None) -> None:
        self.journal = journal
        self.on_commit = on_commit
        self._pending: list[tuple[Sequence[JournalRow], asyncio.Future[int]]] = []
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal")

    async def start(self) -> None:
        """Start the commit loop on the running event loop."""
        self._wakeup = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    async def submit(self, rows: Sequence[JournalRow]) -> int:
        """Wait until ROWS are durably committed; returns how many were new."""
        if not rows:
            return 0
        if self._wakeup is None:
            raise RuntimeError("journal writer is not started")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append((rows, future))
        self._wakeup.set()
        return await future

    async def _run(self) -> None:
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                group: list[tuple[Sequence[JournalRow], asyncio.Future[int]]] = []
                size = 0
                while self._pending and (not group or size + len(self._pending[0][0]) <= MAX_GROUP_ROWS):
                    item = self._pending.pop(0)
                    group.append(item)
                    size += len(item[0])
                try:
                    counts = await loop.run_in_executor(
                        self._executor, self.journal.append_groups, [rows for rows, _ in group]
                    )
                except Exception as exc:  # a failed commit fails exactly the requests in it
                    for _, future in group:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), count in zip(group, counts, strict=True):
                    if not future.done():
                        future.set_result(count)
                if self.on_commit:
                    self.on_commit()

    async def stop(self) -> None:
        """Finish what is pending, then stop."""
        while self._pending:
            await asyncio.sleep(0.01)
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._executor.shutdown(wait=True)
