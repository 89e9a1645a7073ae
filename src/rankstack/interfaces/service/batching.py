"""Micro-batching: concurrent requests queued (asyncio) and scored together in one stage call.

A request (*job*: a query and its texts) is cut into *chunks* of at most ``chunk_pairs`` pairs (a
pointwise reranker scores each pair alone, so chunks change nothing but latency; a listwise one gets
the whole request as one chunk). One worker task takes chunks from the head of the queue until they
hold ``max_batch_pairs`` pairs, or until ``max_wait_ms`` has passed since the oldest one arrived, and
runs ONE call of ``score`` over all of them on a single worker thread (the model is loaded once; the
stage batches by its token budget inside the call). Each chunk is its own query of that call.

The queue is bounded twice: :meth:`Batcher.submit` raises :class:`asyncio.QueueFull` (the service
answers 429) once ``max_queue`` jobs are waiting, or once the queued work would take more than
``max_queue_s`` seconds: the worker measures its seconds per pair over its last batches (and per call),
and a request whose pairs would end behind more than that much estimated work is refused at once,
rather than accepted to time out in the queue (a 504 after the request timeout). So a burst is answered
with 429s, the backlog never exceeds ``max_queue_s`` of work, and the service recovers as soon as the
burst ends. An idle worker always admits one request, whatever its size.

A job whose caller gave up (its timeout) is cancelled: its chunks not yet started are dropped, and
what was scored stays in :attr:`Job.scores` (the partial answer). When a batch of several chunks fails
with an error that may be one request's fault (``isolate(exc)``: e.g. NaN scores), each chunk is
scored again alone, so that one bad request does not fail the others.

:meth:`Batcher.call` runs any other function on the same worker thread, in queue order (embeddings,
a search pipeline): one thread owns the models.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from rankstack.errors import ConfigError

__all__ = ["Batcher", "Job"]

log = logging.getLogger("rankstack.service")

#: ``score(units) -> scores``: ``units`` is a list of ``(query, texts, start)`` (``start``: the index of
#: ``texts[0]`` in its request); one list of floats per unit
ScoreFn = Callable[[list[tuple[str, list[str], int]]], list[list[float]]]


@dataclass(eq=False)
class Job:
    """One request: its query and texts, the scores so far (by text index) and its completion."""

    query: str
    texts: list[str]
    future: asyncio.Future
    scores: dict[int, float] = field(default_factory=dict)
    chunks_left: int = 0
    cancelled: bool = False
    enqueued: float = field(default_factory=time.monotonic)

    @property
    def done(self) -> bool:
        return self.future.done()

    def unscored(self) -> list[int]:
        return [i for i in range(len(self.texts)) if i not in self.scores]


@dataclass(eq=False)
class _Chunk:
    job: Job
    start: int
    stop: int

    @property
    def pairs(self) -> int:
        return self.stop - self.start


@dataclass(eq=False)
class _Call:
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    future: asyncio.Future
    cancelled: bool = False
    enqueued: float = field(default_factory=time.monotonic)


class Batcher:
    """The queue and its worker; see the module docstring. Start it in the service's event loop."""

    def __init__(self, score: ScoreFn, *, max_batch_pairs: int = 128, max_wait_ms: float = 5.0,
                 max_queue: int = 64, chunk_pairs: int | None = None, metrics: Any = None,
                 isolate: Callable[[BaseException], bool] | None = None, max_queue_s: float | None = None):
        if max_batch_pairs < 1 or max_queue < 1:
            raise ConfigError("max_batch_pairs and max_queue must be >= 1")
        if max_wait_ms < 0:
            raise ConfigError("max_wait_ms must be >= 0")
        if max_queue_s is not None and not max_queue_s > 0:
            raise ConfigError(f"max_queue_s must be > 0 seconds, got {max_queue_s}")
        #: seconds of estimated queued work at most (None: bounded by ``max_queue`` requests only)
        self.max_queue_s = None if max_queue_s is None else float(max_queue_s)
        self.score_fn = score
        self.max_batch_pairs = int(max_batch_pairs)
        self.max_wait = float(max_wait_ms) / 1000.0
        self.max_queue = int(max_queue)
        #: pairs per chunk (None: a request is never split)
        self.chunk_pairs = chunk_pairs
        self.metrics = metrics
        self.isolate = isolate or (lambda e: False)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rankstack-model")
        self._queue: collections.deque[_Chunk | _Call] = collections.deque()
        self._jobs = 0  # jobs and calls submitted and not finished
        self._pairs = 0  # pairs in queued chunks
        self._running_pairs = 0  # pairs of the batch being scored
        self._calls = 0  # queued calls
        # the worker's recent costs: (seconds, pairs) of its last batches, seconds of its last calls
        self._batch_costs: collections.deque[tuple[float, int]] = collections.deque(maxlen=16)
        self._call_costs: collections.deque[float] = collections.deque(maxlen=16)
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._busy = False
        self.batches = 0  # stage calls made (for tests and /health)
        self._ids = itertools.count()

    # -- life ------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="rankstack-batcher")

    async def stop(self, drain_s: float = 30.0) -> None:
        """Finish what is queued (at most ``drain_s`` seconds), then stop the worker and its thread."""
        t_end = time.monotonic() + drain_s
        while (self._queue or self._busy) and time.monotonic() < t_end:
            await asyncio.sleep(0.01)
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - stopping
                pass
            self._task = None
        for item in self._queue:
            fut = item.future if isinstance(item, _Call) else item.job.future
            if not fut.done():
                fut.set_exception(RuntimeError("the service is shutting down"))
        self._queue.clear()
        self.executor.shutdown(wait=True, cancel_futures=True)

    @property
    def depth(self) -> int:
        """Requests (jobs and calls) submitted and not finished."""
        return self._jobs

    @property
    def queued_pairs(self) -> int:
        return self._pairs

    @property
    def seconds_per_pair(self) -> float | None:
        """The worker's measured seconds per pair over its last batches (None before the first)."""
        pairs = sum(p for _, p in self._batch_costs)
        return sum(t for t, _ in self._batch_costs) / pairs if pairs else None

    def backlog_s(self, extra_pairs: int = 0) -> float | None:
        """Estimated seconds of work queued and running (plus ``extra_pairs``); None before the
        worker has scored anything."""
        per_pair = self.seconds_per_pair
        if per_pair is None:
            return None
        per_call = sum(self._call_costs) / len(self._call_costs) if self._call_costs else 0.0
        return (self._pairs + self._running_pairs + extra_pairs) * per_pair + self._calls * per_call

    def _gauges(self) -> None:
        if self.metrics is not None:
            self.metrics.queue_depth.set(self._jobs)
            self.metrics.queue_pairs.set(self._pairs)

    # -- submitting ------------------------------------------------------------------------------
    def check_admit(self, pairs: int = 0) -> None:
        """Raise :class:`asyncio.QueueFull` if a request of ``pairs`` pairs would be refused now."""
        if self._jobs >= self.max_queue:
            raise asyncio.QueueFull(f"{self._jobs} requests are queued (the limit is {self.max_queue})")
        if self.max_queue_s is not None and self._jobs > 0:
            backlog = self.backlog_s(pairs)
            if backlog is not None and backlog > self.max_queue_s:
                raise asyncio.QueueFull(f"about {backlog:.1f} s of scoring would be queued ahead of this request's "
                                        f"end (the limit is {self.max_queue_s:g} s)")

    def retry_after_s(self) -> float:
        """Seconds until the backlog is back under ``max_queue_s`` (0 when it is or is unknown)."""
        backlog = self.backlog_s()
        if backlog is None or self.max_queue_s is None:
            return 0.0
        return max(0.0, backlog - self.max_queue_s)

    def _admit(self, pairs: int = 0) -> None:
        if self._task is None:
            raise RuntimeError("the batcher is not running")
        self.check_admit(pairs)

    def submit(self, query: str, texts: Sequence[str]) -> Job:
        """Queue one request; ``await job.future`` (or :meth:`wait`) for its scores."""
        self._admit(len(texts))
        loop = asyncio.get_running_loop()
        job = Job(query, list(texts), loop.create_future())
        n = len(job.texts)
        size = self.chunk_pairs or max(n, 1)
        bounds = [(a, min(a + size, n)) for a in range(0, n, size)] or [(0, 0)]
        job.chunks_left = len(bounds)
        for a, b in bounds:
            self._queue.append(_Chunk(job, a, b))
            self._pairs += b - a
        self._jobs += 1
        self._gauges()
        assert self._wake is not None
        self._wake.set()
        return job

    async def wait(self, job: Job, timeout: float | None) -> bool:
        """Wait for ``job``; ``True`` if it finished, ``False`` if ``timeout`` ran out (the job is then
        cancelled and keeps its partial scores). Its error, if it failed, is raised."""
        try:
            await asyncio.wait_for(asyncio.shield(job.future), timeout)
            return True
        except asyncio.TimeoutError:
            if job.future.done():  # finished at the last moment
                job.future.result()
                return True
            self.cancel(job)
            return False

    def cancel(self, job: Job) -> None:
        """Drop ``job``'s chunks not yet started (what was scored stays in ``job.scores``)."""
        if job.cancelled or job.future.done():
            return
        job.cancelled = True
        kept = collections.deque()
        for item in self._queue:
            if isinstance(item, _Chunk) and item.job is job:
                self._pairs -= item.pairs
            else:
                kept.append(item)
        self._queue = kept
        self._finish(job, None, cancelled=True)

    async def call(self, fn: Callable[..., Any], *args: Any, timeout: float | None = None) -> Any:
        """Run ``fn(*args)`` on the worker thread, in queue order (counted against ``max_queue``);
        raises :class:`asyncio.TimeoutError` after ``timeout`` seconds (dropped if not started)."""
        self._admit()
        item = _Call(fn, args, asyncio.get_running_loop().create_future())
        self._queue.append(item)
        self._jobs += 1
        self._calls += 1
        self._gauges()
        assert self._wake is not None
        self._wake.set()
        try:
            return await asyncio.wait_for(asyncio.shield(item.future), timeout)
        except asyncio.TimeoutError:
            if item.future.done():
                return item.future.result()
            item.cancelled = True
            raise

    def _finish(self, job: Job, error: BaseException | None, cancelled: bool = False) -> None:
        if job.future.done():
            return
        self._jobs -= 1
        self._gauges()
        if error is not None:
            job.future.set_exception(error)
            job.future.exception()  # mark retrieved: a job nobody waits for any more logs nothing
        else:
            job.future.set_result(None if cancelled else job.scores)

    # -- the worker ------------------------------------------------------------------------------
    async def _loop(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while True:
            while not self._queue:
                self._wake.clear()
                await self._wake.wait()
            head = self._queue[0]
            if isinstance(head, _Call):
                self._queue.popleft()
                self._calls -= 1
                await self._run_call(loop, head)
                continue
            # collect: until max_batch_pairs pairs are queued behind the head, or max_wait has passed
            # since the head arrived (a request that waited while the worker was busy waits no more)
            deadline = head.job.enqueued + self.max_wait
            while self._pending_pairs() < self.max_batch_pairs:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), left)
                except asyncio.TimeoutError:
                    break
            if not self._queue or not isinstance(self._queue[0], _Chunk):
                continue  # the head was cancelled meanwhile
            chunks = self._take()
            if chunks:
                await self._run_chunks(loop, chunks)

    def _pending_pairs(self) -> int:
        n = 0
        for item in self._queue:
            if isinstance(item, _Call):
                break
            n += item.pairs
            if n >= self.max_batch_pairs:
                break
        return n

    def _take(self) -> list[_Chunk]:
        """Chunks from the head of the queue, up to ``max_batch_pairs`` pairs (at least one chunk)."""
        out: list[_Chunk] = []
        pairs = 0
        while self._queue and isinstance(self._queue[0], _Chunk):
            c = self._queue[0]
            if out and pairs + c.pairs > self.max_batch_pairs:
                break
            self._queue.popleft()
            self._pairs -= c.pairs
            if c.job.cancelled or c.job.future.done():
                continue
            out.append(c)
            pairs += c.pairs
        self._gauges()
        return out

    async def _run_call(self, loop: asyncio.AbstractEventLoop, item: _Call) -> None:
        self._busy = True
        try:
            if item.cancelled or item.future.done():
                return
            t0 = time.monotonic()
            try:
                res = await loop.run_in_executor(self.executor, item.fn, *item.args)
                self._call_costs.append(time.monotonic() - t0)
            except BaseException as e:  # noqa: BLE001 - handed to the caller
                if not item.future.done():
                    item.future.set_exception(e)
                    item.future.exception()
                if isinstance(e, asyncio.CancelledError):
                    raise
            else:
                if not item.future.done():
                    item.future.set_result(res)
        finally:
            self._busy = False
            self._jobs -= 1
            self._gauges()

    async def _run_chunks(self, loop: asyncio.AbstractEventLoop, chunks: list[_Chunk]) -> None:
        units = [(c.job.query, c.job.texts[c.start:c.stop], c.start) for c in chunks]
        pairs = sum(c.pairs for c in chunks)
        self._busy = True
        self._running_pairs = pairs
        try:
            if self.metrics is not None:
                self.metrics.batch_pairs.observe(pairs)
                self.metrics.batch_requests.observe(len({id(c.job) for c in chunks}))
            self.batches += 1
            t0 = time.monotonic()
            try:
                out = await loop.run_in_executor(self.executor, self.score_fn, units)
                if pairs:
                    self._batch_costs.append((time.monotonic() - t0, pairs))
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - each request gets its error
                if len(chunks) > 1 and self.isolate(e):
                    log.info("a batch of %d requests failed (%s); scoring each alone", len(chunks), e)
                    for c, u in zip(chunks, units):
                        try:
                            (scores,) = await loop.run_in_executor(self.executor, self.score_fn, [u])
                        except asyncio.CancelledError:
                            raise
                        except Exception as e1:  # noqa: BLE001
                            self._finish(c.job, e1)
                        else:
                            self._deliver(c, scores)
                    return
                for c in chunks:
                    self._finish(c.job, e)
                return
            for c, scores in zip(chunks, out):
                self._deliver(c, scores)
        finally:
            self._busy = False
            self._running_pairs = 0

    def _deliver(self, c: _Chunk, scores: Sequence[float]) -> None:
        job = c.job
        if job.future.done():
            return
        for i, s in zip(range(c.start, c.stop), scores):
            job.scores[i] = s
        job.chunks_left -= 1
        if job.chunks_left <= 0:
            self._finish(job, None)
