"""Micro-batching: concurrent requests' images go to the model together."""

from __future__ import annotations

import asyncio
from typing import Callable

import numpy as np


class MicroBatcher:
    """Collects images submitted by concurrent requests into one model call.

    The first image waits at most `max_wait_ms` for others (or until `max_batch` are queued); the
    batch runs in a worker thread so the event loop keeps accepting requests meanwhile. `fn` maps
    an (N, ...) array to N result rows.

    Example:
        >>> batcher = MicroBatcher(predictor.predict, max_batch=32)  # doctest: +SKIP
        >>> probabilities = await batcher.submit(image)  # doctest: +SKIP
    """

    def __init__(self, fn: Callable[[np.ndarray], np.ndarray], max_batch: int = 32, max_wait_ms: float = 5.0):
        self.fn, self.max_batch, self.max_wait = fn, max_batch, max_wait_ms / 1000
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        self.batches: list[int] = []  # sizes of the calls made (the tests and /health read it)

    async def submit(self, image: np.ndarray) -> np.ndarray:
        if self._task is None or self._task.done():
            self._queue = asyncio.Queue()
            self._task = asyncio.get_running_loop().create_task(self._run())
        future = asyncio.get_running_loop().create_future()
        await self._queue.put((image, future))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = [await self._queue.get()]
            deadline = loop.time() + self.max_wait
            while len(items) < self.max_batch:
                timeout = deadline - loop.time()
                if timeout <= 0:
                    break
                try:
                    items.append(await asyncio.wait_for(self._queue.get(), timeout))
                except asyncio.TimeoutError:
                    break
            self.batches.append(len(items))
            try:
                rows = await asyncio.to_thread(self.fn, np.stack([image for image, _ in items]))
            except Exception as err:  # the model failed: every waiting request gets the error
                for _, future in items:
                    if not future.done():
                        future.set_exception(err)
                continue
            for (_, future), row in zip(items, rows):
                if not future.done():
                    future.set_result(row)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
