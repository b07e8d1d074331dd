from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from setpoint.serving.batcher import MicroBatcher


def test_an_idle_model_answers_a_lone_request_at_once() -> None:
    calls: list[list[int]] = []

    def run(items: Sequence[int]) -> list[int]:
        calls.append(list(items))
        return [i * 10 for i in items]

    async def main() -> int:
        return await MicroBatcher(run, max_rows=8).submit(4)

    assert asyncio.run(main()) == 40
    assert calls == [[4]]


def test_requests_arriving_during_a_batch_form_the_next_one() -> None:
    release = threading.Event()
    started = threading.Event()
    calls: list[list[int]] = []

    def run(items: Sequence[int]) -> list[int]:
        calls.append(list(items))
        if len(calls) == 1:
            started.set()
            release.wait(timeout=30)
        return [i * 10 for i in items]

    async def main() -> list[int]:
        batcher: MicroBatcher[int, int] = MicroBatcher(run, max_rows=4)
        first = asyncio.ensure_future(batcher.submit(0))
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 30)
        rest = [asyncio.ensure_future(batcher.submit(i)) for i in range(1, 10)]
        await asyncio.sleep(0)  # let them queue
        assert batcher.queue_depth == 9
        release.set()
        return [await first, *[await r for r in rest]]

    assert asyncio.run(main()) == [i * 10 for i in range(10)]
    assert calls == [[0], [1, 2, 3, 4], [5, 6, 7, 8], [9]]


def test_a_failing_batch_fails_each_of_its_callers_and_the_next_batch_runs() -> None:
    def run(items: Sequence[int]) -> list[int]:
        if 13 in items:
            raise ValueError("unlucky")
        return list(items)

    async def main() -> tuple[BaseException | int, int]:
        batcher: MicroBatcher[int, int] = MicroBatcher(run, max_rows=1)
        bad, good = await asyncio.gather(
            batcher.submit(13), batcher.submit(2), return_exceptions=True
        )
        return bad, good  # type: ignore[return-value]

    bad, good = asyncio.run(main())
    assert isinstance(bad, ValueError)
    assert good == 2


def test_callers_are_answered_only_after_the_commit_hook_and_fail_with_it() -> None:
    committed: list[list[int]] = []

    async def commit(results: Sequence[int], _items: Sequence[int]) -> None:
        if -1 in results:
            raise OSError("disk full")
        committed.append(list(results))

    async def main() -> list[object]:
        batcher: MicroBatcher[int, int] = MicroBatcher(
            lambda xs: list(xs), max_rows=1, after=commit
        )
        answers = await asyncio.gather(
            batcher.submit(1), batcher.submit(-1), return_exceptions=True
        )
        await batcher.drain()
        return answers

    first, second = asyncio.run(main())
    assert first == 1
    assert isinstance(second, OSError)
    assert committed == [[1]]


def test_rows_bound_the_batch_not_requests() -> None:
    calls: list[list[int]] = []
    gate = threading.Event()

    def run(items: Sequence[int]) -> list[int]:
        calls.append(list(items))
        gate.wait(timeout=30)
        return list(items)

    async def main() -> None:
        batcher: MicroBatcher[int, int] = MicroBatcher(run, max_rows=5, size=lambda n: n)
        tasks = [asyncio.ensure_future(batcher.submit(n)) for n in (1, 3, 2, 4)]
        await asyncio.sleep(0)
        gate.set()
        await asyncio.gather(*tasks)

    asyncio.run(main())
    assert calls == [[1, 3], [2], [4]] or calls == [[1], [3, 2], [4]]


@pytest.mark.parametrize("wait", [0.0, 1.0])
def test_a_wait_only_changes_grouping(wait: float) -> None:
    async def main() -> list[int]:
        batcher: MicroBatcher[int, int] = MicroBatcher(
            lambda xs: list(xs), max_rows=64, max_wait_ms=wait
        )
        return list(await asyncio.gather(*(batcher.submit(i) for i in range(20))))

    assert asyncio.run(main()) == list(range(20))
