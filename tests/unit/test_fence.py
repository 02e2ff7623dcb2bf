"""The changelog fence across recoveries (consumers/changelog.py): Faust's recovery of a
partition kept across a rebalance reads only the records after the last recovery, so a late
record of an older writer there is weighed against what this worker logged since. Builds the
Faust app; connects to nothing."""

from __future__ import annotations

from types import SimpleNamespace

from ccmon.consumers.changelog import WRITER, writer_stamp
from ccmon.consumers.worker import Worker
from ccmon.settings import load

KEY = b"0/L\x1fsales\x1fvoice"


def record(value: bytes | None, generation: int, started_ms: int = 1) -> SimpleNamespace:
    """A changelog record as recovery hands it over, of partition 0."""
    headers = [(WRITER, writer_stamp(generation, started_ms))]
    return SimpleNamespace(message=SimpleNamespace(key=KEY, value=value, headers=headers,
                                                   partition=0))


def queues_table():
    worker = Worker(load(environ={"CCMON_BROKERS": "127.0.0.1:1"}), 4)
    return worker.tables[1]


def test_a_late_record_is_skipped_in_a_later_recovery_of_a_kept_partition():
    table = queues_table()
    table.apply_changelog_batch([record(b"first", generation=1), record(b"newer", generation=2)])
    assert table.take_overwritten({0}) == {}
    # Generation 3, partition kept: recovery reads only what came after, a zombie's late
    # record of generation 1 among it.
    table.apply_changelog_batch([record(b"stale", generation=1)])
    assert table.data[KEY] == b"newer"
    assert table.take_overwritten({0}) == {0: [(KEY, b"newer")]}


def test_a_late_record_after_our_own_write_is_skipped():
    table = queues_table()
    table.apply_changelog_batch([record(b"first", generation=1)])
    table.take_overwritten({0})
    # Generation 2: this worker logs a newer value, noting its writer as
    # `ChangelogWriter.send_changes` does.
    table.data[KEY] = b"ours"
    table.stamps[KEY] = writer_stamp(2, 7)
    table.apply_changelog_batch([record(b"stale", generation=1)])
    assert table.data[KEY] == b"ours"


def test_a_newer_writers_record_still_applies():
    table = queues_table()
    table.apply_changelog_batch([record(b"first", generation=1)])
    table.take_overwritten({0})
    table.apply_changelog_batch([record(b"newer", generation=2)])
    assert table.data[KEY] == b"newer"
    assert table.take_overwritten({0}) == {}


def test_stamps_of_keys_gone_from_the_store_are_forgotten():
    table = queues_table()
    table.apply_changelog_batch([record(b"first", generation=1), record(None, generation=1)])
    table.take_overwritten({0})
    assert KEY not in table.stamps
