"""Adaptive micro-batching: concurrent requests for one model share one predict call.

There is no fixed timer by default. A request that finds the model idle is run at
once, so light traffic is never delayed; requests that arrive while a batch is being
predicted queue up and go together as the next batch, so the batch size follows the
load by itself. ``max_wait_ms`` > 0 adds a short wait at an idle model for callers
that prefer fuller batches to the lowest latency. The batch function runs in a
worker thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass
class BatchStats:
    batches: int = 0
    items: int = 0
    last_batch_size: int = 0
    last_batch_seconds: float = 0.0
    # Moving average of a batch's time, from the second batch on (the first pays for a
    # cold model); 0 until then.
    batch_seconds: float = 0.0


class MicroBatcher(Generic[Item, Result]):
    """Groups ``submit``-ted items into calls of ``run(items) -> results`` (same order).

    ``after`` (optional) is awaited with the batch's results and items on the event
    loop before any caller is answered: the prediction log's group commit goes there.
    ``failed`` (optional) hears, on the event loop, of each batch whose ``run`` raised.
    ``size`` tells how many rows an item holds, so that a batch stays under ``max_rows``.
    """

    def __init__(
        self,
        run: Callable[[Sequence[Item]], Sequence[Result]],
        *,
        max_rows: int,
        max_wait_ms: float = 0.0,
        size: Callable[[Item], int] = lambda _item: 1,
        after: Callable[[Sequence[Result], Sequence[Item]], Awaitable[None]] | None = None,
        failed: Callable[[BaseException], None] | None = None,
        executor: ThreadPoolExecutor | None = None,
    ) -> None:
        self._run = run
        self._max_rows = max_rows
        self._max_wait = max_wait_ms / 1000.0
        self._size = size
        self._after = after
        self._failed = failed
        self._queued_rows = 0
        self._executor = executor or ThreadPoolExecutor(1, thread_name_prefix="setpoint-predict")
        self._queue: deque[tuple[Item, asyncio.Future[Result], int]] = deque()  # and its rows
        self._busy = False
        self._tasks: set[asyncio.Task[None]] = set()  # held so they are not collected
        self.stats = BatchStats()

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    @property
    def queued_rows(self) -> int:
        return self._queued_rows

    @property
    def busy(self) -> bool:
        return self._busy

    async def submit(self, item: Item) -> Result:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        rows = self._size(item)
        self._queue.append((item, future, rows))
        self._queued_rows += rows
        if not self._busy:
            self._busy = True
            self._spawn(self._drain())
        return await future

    def _spawn(self, work: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            if self._max_wait > 0:
                await asyncio.sleep(self._max_wait)
            while self._queue:
                batch = self._take()
                items = [item for item, _ in batch]
                started = time.perf_counter()
                try:
                    results = await loop.run_in_executor(self._executor, self._run, items)
                except Exception as exc:  # the whole batch failed: every caller hears why
                    if self._failed is not None:
                        self._failed(exc)
                    _fail(batch, exc)
                    continue
                self._record(items, time.perf_counter() - started)
                # Answer after the log commit, but predict the next batch meanwhile.
                self._spawn(self._finish(batch, results))
        finally:
            self._busy = False
            if self._queue:  # arrived while we were finishing: start again
                self._busy = True
                self._spawn(self._drain())

    async def _finish(
        self, batch: list[tuple[Item, asyncio.Future[Result]]], results: Sequence[Result]
    ) -> None:
        try:
            if self._after is not None:
                await self._after(results, [item for item, _ in batch])
        except Exception as exc:  # not logged, so not acknowledged
            _fail(batch, exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    def _take(self) -> list[tuple[Item, asyncio.Future[Result]]]:
        queue = self._queue
        item, future, rows = queue.popleft()
        batch = [(item, future)]
        while queue and rows + queue[0][2] <= self._max_rows:
            item, future, size = queue.popleft()
            rows += size
            batch.append((item, future))
        self._queued_rows -= rows
        return batch

    def _record(self, items: list[Item], seconds: float) -> None:
        stats = self.stats
        stats.batches += 1
        stats.items += len(items)
        stats.last_batch_size = len(items)
        stats.last_batch_seconds = seconds
        if stats.batches == 2:
            stats.batch_seconds = seconds
        elif stats.batches > 2:
            stats.batch_seconds = 0.8 * stats.batch_seconds + 0.2 * seconds

    async def drain(self) -> None:
        """Wait until every submitted item is answered (graceful shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def close(self) -> None:
        self._executor.shutdown(wait=True)


def _fail(batch: Sequence[tuple[object, asyncio.Future[Result]]], exc: BaseException) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(exc)
