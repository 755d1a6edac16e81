"""The SQLite checkpoint saver: writes asked for together are committed together, each writer returns once its
write is in the database, a write the database refuses fails only its writer, and reads see what was written."""

import asyncio
import gc
import sqlite3

import pytest
from langgraph.checkpoint.base import empty_checkpoint

from chimera.store.checkpoint_saver import open_saver


def config_of(thread: str, checkpoint_id: str = "") -> dict:
    return {"configurable": {"thread_id": thread, "checkpoint_ns": "", "checkpoint_id": checkpoint_id}}


def rows(db, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def test_writes_from_many_tasks_at_once_are_all_in_the_database_when_each_returns(tmp_path):
    db = str(tmp_path / "run.db")

    async def go():
        saver, stack = await open_saver(db)
        async with stack:
            async def one(i: int) -> None:
                await saver.aput_writes(config_of(f"t{i % 7}", f"c{i}"), [("slot", i), ("note", f"n{i}")], f"task{i}")
                # returned: the write is committed, so another connection sees it now
                assert rows(db, f"SELECT count(*) FROM writes WHERE task_id = 'task{i}'") == [(2,)]
            await asyncio.gather(*(one(i) for i in range(200)))

    asyncio.run(go())
    assert rows(db, "SELECT count(*) FROM writes") == [(400,)]


def test_a_write_the_database_refuses_fails_only_its_own_writer(tmp_path):
    db = str(tmp_path / "run.db")

    async def go():
        saver, stack = await open_saver(db)
        async with stack:
            await saver.conn.execute("CREATE TRIGGER refuse BEFORE INSERT ON writes WHEN NEW.channel = 'poison' "
                                     "BEGIN SELECT RAISE(ABORT, 'refused'); END")
            results = await asyncio.gather(
                *(saver.aput_writes(config_of("t", f"c{i}"), [("poison" if i == 5 else "slot", i)], f"task{i}")
                  for i in range(12)), return_exceptions=True)
        return results

    results = asyncio.run(go())
    assert isinstance(results[5], sqlite3.IntegrityError) and "refused" in str(results[5])
    assert [r for i, r in enumerate(results) if i != 5] == [None] * 11
    assert rows(db, "SELECT count(*) FROM writes") == [(11,)]


def test_a_writer_cancelled_while_it_waits_still_has_its_write_committed(tmp_path):
    db = str(tmp_path / "run.db")

    async def go():
        saver, stack = await open_saver(db)
        async with stack:
            writers = [asyncio.create_task(saver.aput_writes(config_of("t", f"c{i}"), [("slot", i)], f"task{i}"))
                       for i in range(20)]
            await asyncio.sleep(0)  # every writer has queued its write
            writers[3].cancel()
            done = await asyncio.gather(*writers, return_exceptions=True)
            assert isinstance(done[3], asyncio.CancelledError)
            await asyncio.sleep(0.2)  # the group the cancelled writer was in has committed

    asyncio.run(go())
    assert rows(db, "SELECT count(*) FROM writes") == [(20,)]


def test_a_checkpoint_and_its_pending_writes_read_back_as_written(tmp_path):
    db = str(tmp_path / "run.db")

    async def go():
        saver, stack = await open_saver(db)
        async with stack:
            checkpoint = empty_checkpoint()
            checkpoint["channel_values"] = {"topic": "Number theory", "slots": 8}
            saved = await asyncio.gather(*(saver.aput(config_of(f"t{i}"), {**checkpoint, "id": f"{i:032x}"},
                                                      {"source": "loop", "step": i}, {}) for i in range(30)))
            await saver.aput_writes(saved[4], [("drafted", [{"problem_id": "p", "ok": True}])], "task")
            return await saver.aget_tuple(config_of("t4")), await saver.aget_tuple(config_of("nobody"))

    found, missing = asyncio.run(go())
    assert missing is None
    assert found.checkpoint["channel_values"] == {"topic": "Number theory", "slots": 8}
    assert found.metadata["step"] == 4
    assert found.pending_writes == [("task", "drafted", [{"problem_id": "p", "ok": True}])]


@pytest.mark.parametrize("writers", [1, 40])
def test_a_database_locked_by_another_process_fails_every_waiting_writer_after_one_wait(tmp_path, writers):
    db = str(tmp_path / "run.db")

    async def go():
        saver, stack = await open_saver(db, lock_wait_s=0.5)
        async with stack:
            other = sqlite3.connect(db, isolation_level=None)
            other.execute("BEGIN IMMEDIATE")
            try:
                started = asyncio.get_running_loop().time()
                results = await asyncio.gather(*(saver.aput_writes(config_of("t", f"c{i}"), [("slot", i)], f"task{i}")
                                                 for i in range(writers)), return_exceptions=True)
                waited = asyncio.get_running_loop().time() - started
            finally:
                other.execute("ROLLBACK")
                other.close()
        return results, waited

    results, waited = asyncio.run(go())
    assert all(isinstance(r, sqlite3.OperationalError) and "locked" in str(r) for r in results)
    assert waited < 20 * 0.5  # not one wait per writer, which would be 40 of them


def test_a_cancelled_writer_whose_group_fails_leaves_no_unread_error_behind(tmp_path):
    db = str(tmp_path / "run.db")
    unhandled: list[dict] = []

    async def go():
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: unhandled.append(context))
        saver, stack = await open_saver(db, lock_wait_s=0.3)
        async with stack:
            other = sqlite3.connect(db, isolation_level=None)
            other.execute("BEGIN IMMEDIATE")
            writers = [asyncio.create_task(saver.aput_writes(config_of("t", f"c{i}"), [("slot", i)], f"task{i}"))
                       for i in range(5)]
            await asyncio.sleep(0)
            writers[2].cancel()
            outcomes = await asyncio.gather(*writers, return_exceptions=True)
            other.execute("ROLLBACK")
            other.close()
        gc.collect()
        return [type(outcome).__name__ for outcome in outcomes]

    assert asyncio.run(go()) == ["OperationalError"] * 2 + ["CancelledError"] + ["OperationalError"] * 2
    gc.collect()
    assert unhandled == []
