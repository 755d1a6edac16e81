"""When a single-process run starts its next topic: a place free under the ceiling, and room in the budget
(fewer calls waiting than it holds), or nothing running at all."""

import asyncio
import gc

import pytest

from chimera.engine.admission import ADMIT_BATCH, run_while_room


def test_every_item_runs_and_never_more_than_the_ceiling_at_once():
    running, most, ran = 0, 0, []

    async def one(i: int) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.001 * (i % 5))
        running -= 1
        ran.append(i)

    asyncio.run(run_while_room(range(100), one, capacity=7, has_room=lambda: True))
    assert sorted(ran) == list(range(100)) and most == 7


def test_without_room_one_batch_runs_at_a_time_and_more_start_once_room_comes_back():
    room = False
    running, timeline = 0, []

    async def one(i: int) -> None:
        nonlocal running
        running += 1
        timeline.append(running)
        await asyncio.sleep(0.05)
        running -= 1

    async def go():
        nonlocal room
        work = asyncio.create_task(run_while_room(range(100), one, capacity=16, has_room=lambda: room))
        await asyncio.sleep(0.18)
        # none waits for ever: a batch starts whenever none runs
        assert max(timeline) == ADMIT_BATCH and len(timeline) >= 3 * ADMIT_BATCH
        room = True
        await work

    asyncio.run(go())
    assert max(timeline) == 16


def test_the_first_error_stops_the_rest_and_is_raised():
    started, cancelled = [], []

    async def one(i: int) -> None:
        started.append(i)
        try:
            if i == 3:
                await asyncio.sleep(0.01)
                raise ValueError("endpoint unreachable")
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(i)
            raise

    with pytest.raises(ValueError, match="unreachable"):
        asyncio.run(run_while_room(range(10), one, capacity=10, has_room=lambda: True))
    assert 3 in started and sorted(cancelled) == sorted(set(started) - {3})


def test_once_stopping_is_set_nothing_more_starts_and_what_runs_finishes():
    started = []

    async def go():
        stopping = asyncio.Event()

        async def one(i: int) -> None:
            started.append(i)
            if i == 0:
                stopping.set()
            await asyncio.sleep(0.05)

        await run_while_room(range(100), one, capacity=4, has_room=lambda: True, stopping=stopping)

    asyncio.run(go())
    assert started == [0, 1, 2, 3]


@pytest.mark.parametrize("turns", range(12))
def test_a_cancelled_run_stops_whenever_the_cancel_lands_and_leaves_nothing_running(turns):
    children: list[asyncio.Task] = []

    async def one(i: int) -> None:
        children.append(asyncio.current_task())
        await asyncio.sleep(0 if i % 2 else 0.001)  # items finish on the very turns the cancel may land on

    async def go():
        work = asyncio.create_task(run_while_room(range(10_000), one, capacity=3, has_room=lambda: True))
        for _ in range(turns):
            await asyncio.sleep(0)
        await asyncio.sleep(0.002 * (turns % 3))
        work.cancel()
        with pytest.raises(asyncio.CancelledError):
            await work

    asyncio.run(go())
    assert len(children) < 10_000 and all(child.done() for child in children)



def test_items_failing_together_raise_one_error_and_leave_none_unread():
    unread: list[dict] = []

    async def one(i: int) -> None:
        await asyncio.sleep(0.01)
        raise OSError(f"database is locked ({i})")

    async def go():
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: unread.append(context))
        with pytest.raises(OSError, match="locked"):
            await run_while_room(range(6), one, capacity=6, has_room=lambda: True)

    asyncio.run(go())
    gc.collect()
    assert unread == []
