"""stream/taskrouter.py's edges: a waiting contact moved to a queue either side of its own in
name order, a reservation accepted out of turn, a task canceled before any queue (and
forgotten), a worker with two tasks, a completion that cannot be mapped, a transfer that fails
then is tried again, a transfer's new task completing while the original still wraps up,
timestamps at the end of year 9999, attributes of any JSON type. Expectations by hand from
adapters.md, events.md and docs/adapters.md's mapping table, on callbacks with the parameters
of Twilio's "TaskRouter Events reference"."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, urlencode

import orjson
import pytest

from ccmon.stream.taskrouter import TaskRouter

T0 = 1_772_445_600  # 2026-03-02T10:00:00Z
ANA, BEN = "WK" + "a" * 32, "WK" + "b" * 32
TA, TB, TC = ("WT" + c * 32 for c in "abc")


def callback(mapper: TaskRouter, kind: str, seconds: float, task: str = TA, **params: str):
    """One callback as TaskRouter POSTs it (the form parsed back from its body)."""
    form = {"EventType": kind, "Timestamp": str(T0 + seconds), "TaskSid": task,
            "TaskChannelUniqueName": "voice", **params}
    body = urlencode(form)
    return mapper.feed(dict(parse_qsl(body, keep_blank_values=True)), body.encode())


def brief(outcome) -> list[tuple]:
    """(seconds after T0, type, contact or worker, queue | to_queue | agent | state)."""
    return [(round(e["ts"] - T0), e["type"], e.get("contact_id") or e["agent_id"],
             e.get("state") or e.get("queue") or e.get("to_queue") or e.get("agent_id"))
            for e in outcome.events]


def answered(mapper: TaskRouter, task: str, queue: str, worker: str, at: float,
             **params: str) -> None:
    """task.created, task-queue.entered at `at`, reservation.accepted at `at` + 5."""
    callback(mapper, "task.created", at, task, **params)
    callback(mapper, "task-queue.entered", at, task, TaskQueueName=queue)
    callback(mapper, "reservation.accepted", at + 5, task, WorkerSid=worker)


@pytest.mark.parametrize("first, then", [("billing", "support"), ("support", "billing")])
def test_a_waiting_contact_moved_to_another_queue_is_transferred(first, then):
    # docs/adapters.md: a waiting task entering another queue is a contact.transferred, to
    # whichever queue (name order plays no part).
    mapper = TaskRouter()
    callback(mapper, "task.created", 0)
    callback(mapper, "task-queue.entered", 0, TaskQueueName=first)
    moved = callback(mapper, "task-queue.moved", 30, TaskQueueName=then)
    assert brief(moved) == [(30, "contact.transferred", TA, then)]


@pytest.mark.parametrize("wrapped", [False, True])
def test_a_reservation_accepted_out_of_turn_answers_nothing(wrapped):
    # A task answered by Ana, then (in conversation, or in wrap-up) a reservation accepted by
    # Ben: the contact was answered once, by Ana; Ben is not made busy.
    mapper = TaskRouter()
    answered(mapper, TA, "support", ANA, 0)
    if wrapped:
        callback(mapper, "task.wrapup", 60)
    assert brief(callback(mapper, "reservation.accepted", 70, WorkerSid=BEN)) == []
    if not wrapped:
        assert brief(callback(mapper, "task.wrapup", 80)) == [
            (80, "contact.ended", TA, None), (80, "agent.state", ANA, "acw")]


@pytest.mark.parametrize("restored", [False, True])
def test_a_task_canceled_before_any_queue_says_nothing_and_is_forgotten(restored):
    # docs/adapters.md: task.canceled before any queue: nothing (no event, nothing skipped);
    # the same after a restart from the position file's JSON in between.
    mapper = TaskRouter()
    callback(mapper, "task.created", 0)
    if restored:
        mapper = TaskRouter(json.loads(json.dumps(mapper.to_json())))
    outcome = callback(mapper, "task.canceled", 3)
    assert (outcome.events, outcome.skipped, outcome.malformed) == ([], None, None)
    assert mapper.contacts == {} and mapper.tasks == {} and mapper.conversations == {}


def test_a_worker_with_two_tasks_stays_busy_then_acw_until_the_last_one():
    # Ana takes two chats; busy while she has a task in conversation, then acw until her last
    # task completes (busy and acw come from the worker's tasks), in whichever order.
    mapper = TaskRouter()
    chat = {"TaskChannelUniqueName": "chat"}
    answered(mapper, TA, "support", ANA, 0, **chat)
    answered(mapper, TB, "support", ANA, 10, **chat)
    assert brief(callback(mapper, "task.wrapup", 100, TB, **chat)) == [
        (100, "contact.ended", TB, None)]
    assert brief(callback(mapper, "task.wrapup", 110, TA, **chat)) == [
        (110, "contact.ended", TA, None), (110, "agent.state", ANA, "acw")]
    assert brief(callback(mapper, "task.completed", 120, TA, **chat)) == []
    assert brief(callback(mapper, "task.completed", 130, TB, **chat)) == [
        (130, "agent.state", ANA, "available")]


def test_a_task_completed_without_wrap_up_leaves_its_worker_busy_with_the_other():
    # task.completed with no wrap-up ends the contact; Ana is still in conversation on her
    # other chat, so still busy, until that one completes too.
    mapper = TaskRouter()
    chat = {"TaskChannelUniqueName": "chat"}
    answered(mapper, TA, "support", ANA, 0, **chat)
    answered(mapper, TB, "support", ANA, 10, **chat)
    assert brief(callback(mapper, "task.completed", 100, TA, **chat)) == [
        (100, "contact.ended", TA, None)]
    assert brief(callback(mapper, "task.completed", 110, TB, **chat)) == [
        (110, "contact.ended", TB, None), (110, "agent.state", ANA, "available")]


def test_a_completion_of_a_waiting_task_is_counted_not_lost():
    # adapters.md, faithful: a record that cannot be mapped is counted. A task completed while
    # still waiting (no reservation accepted) says nothing v1 can use.
    mapper = TaskRouter()
    callback(mapper, "task.created", 0)
    callback(mapper, "task-queue.entered", 0, TaskQueueName="support")
    outcome = callback(mapper, "task.completed", 30)
    assert outcome.events == [] and outcome.skipped is not None


@pytest.mark.parametrize("restored", [False, True])
@pytest.mark.parametrize("undone", ["task.transfer-failed", "task.transfer-canceled"])
def test_a_transfer_that_fails_leaves_the_contact_with_its_agent_to_transfer_again(
        undone, restored):
    # docs/adapters.md: transfer-failed / -canceled: the contact stays with its agent; each of
    # these callbacks is mapped (none skipped), and the second transfer goes through; the
    # same with a restart from the position file's JSON after the first attempt.
    mapper = TaskRouter()
    answered(mapper, TA, "sales", ANA, 0)
    for kind, at in (("task.transfer-initiated", 50), (undone, 55),
                     ("task.transfer-initiated", 60)):
        if restored and kind == undone:
            mapper = TaskRouter(json.loads(json.dumps(mapper.to_json())))
        outcome = callback(mapper, kind, at)
        assert (outcome.events, outcome.skipped) == ([], None), kind
    conversation = orjson.dumps({"conversations": {"conversation_id": TA}}).decode()
    callback(mapper, "task.created", 61, TB, TaskAttributes=conversation)
    assert brief(callback(mapper, "task-queue.entered", 62, TB, TaskQueueName="billing")) == [
        (62, "contact.transferred", TA, "billing"), (62, "agent.state", ANA, "available")]


def test_a_transfers_new_agent_is_freed_when_its_task_completes_first():
    # The original task (Ana's) is still in wrap-up when the new one (Ben's) wraps up and
    # completes: the contact ends then and Ben leaves acw.
    mapper = TaskRouter()
    answered(mapper, TA, "sales", ANA, 0)
    callback(mapper, "task.transfer-initiated", 50)
    conversation = orjson.dumps({"conversations": {"conversation_id": TA}}).decode()
    answered(mapper, TB, "billing", BEN, 60, TaskAttributes=conversation)
    assert brief(callback(mapper, "task.wrapup", 100, TB)) == [
        (100, "contact.ended", TA, None), (100, "agent.state", BEN, "acw")]
    assert brief(callback(mapper, "task.completed", 110, TB)) == [
        (110, "agent.state", BEN, "available")]


@pytest.mark.parametrize("name, text, seconds", [
    ("Timestamp", "253402300799", 253_402_300_799),  # 9999-12-31T23:59:59Z: the last second
    ("TimestampMs", "253402300799000", 253_402_300_799),
    ("Timestamp", "253402300800", None),  # 10000-01-01T00:00:00Z: outside v1's years
])
def test_timestamps_up_to_the_end_of_year_9999(name, text, seconds):
    # events.md: a ts outside years 1970-9999 is invalid; docs/adapters.md: a callback without
    # a usable time is a bad_field.
    form = {"EventType": "worker.activity.update", name: text, "WorkerSid": ANA,
            "WorkerActivityName": "Available"}
    outcome = TaskRouter().feed(form, urlencode(form).encode())
    if seconds is None:
        assert outcome.malformed[0] == "bad_field" and outcome.events == []
    else:
        assert [e["ts"] for e in outcome.events] == [seconds]


@pytest.mark.parametrize("value", [["CH1"], {"sid": "CH1"}, 42, True, None, ""])
def test_a_conversation_id_of_any_json_type_never_stops_the_mapper(value):
    # The attributes are the centre's JSON; whatever conversation_id holds, the two tasks
    # are mapped and nothing raises or is dead-lettered.
    mapper = TaskRouter()
    attributes = orjson.dumps({"conversations": {"conversation_id": value}}).decode()
    answered(mapper, TA, "sales", ANA, 0, TaskAttributes=attributes)
    callback(mapper, "task.created", 10, TB, TaskAttributes=attributes)
    outcome = callback(mapper, "task-queue.entered", 10, TB, TaskQueueName="billing")
    assert outcome.malformed is None and outcome.events
