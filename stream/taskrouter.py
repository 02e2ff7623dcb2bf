"""Twilio TaskRouter (Flex) event callbacks -> v1 events (adapters.md), pure.

TaskRouter POSTs each event to the workspace's EventCallbackUrl as form parameters
(`EventType`, `Timestamp`, `TimestampMs`, `TaskSid`, `TaskAttributes` (JSON),
`TaskChannelUniqueName`, `TaskQueueName`, `WorkerSid`, `WorkerActivityName`, …), signed in
`X-Twilio-Signature`. `signature` computes that header; `TaskRouter` is a state machine fed
the callbacks in the order they come, with JSON state for the position file.

Decisions (docs/adapters.md has the table):
- a task is a contact (`contact_id` = its TaskSid); a task created for a conversation another
  open task holds (`conversations.conversation_id` in the attributes, which Flex sets to the
  first task's sid) continues that contact: its queue entry is a `contact.transferred`, and the
  original task's wrap-up or completion then says nothing;
- `reservation.accepted` is the answer; `task.wrapup` ends the contact (`task.completed` ends
  it when no wrap-up came); `task.canceled` while waiting abandons it;
- a worker is `busy` from an accepted reservation to its task's wrap-up, `acw` until the task
  completes, else its activity: `Available` / `Idle` -> available, `Offline` -> offline,
  any other -> away; its queues are those it took tasks from;
- a callback seen again (same `I-Twilio-Idempotency-Token`, else same body) within an hour of
  event time gives nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import orjson

from .adapter import Event, Outcome, digest, fits, malformed, skipped

CHANNELS = {"voice": "voice", "chat": "chat", "sms": "chat", "whatsapp": "chat",
            "social": "social"}
REPEAT_SECONDS = 3600
UNMAPPED, TRANSFERRED = "", "~"  # in `tasks`: a task that is no contact of ours
ENDS = frozenset(("task.completed", "task.canceled", "task.deleted", "task.system-deleted"))
MAX_TS = 253_402_300_799  # 9999-12-31T23:59:59Z
AVAILABLE = frozenset(("available", "idle"))
# Events of the callback reference that carry no v1 state: skipped, counted by name.
NO_STATE = frozenset((
    "task.updated", "task.deleted", "task.system-deleted", "task-queue.timeout",
    "task.transfer-attempt-failed", "task.transfer-completed", "reservation.created",
    "reservation.rejected", "reservation.timeout", "reservation.canceled",
    "reservation.rescinded", "reservation.completed", "reservation.wrapup",
    "worker.attributes.update", "worker.capacity.update", "worker.channel.availability.update",
    "worker.created", "worker.deleted", "workflow.target-matched", "workflow.entered",
    "workflow.timeout", "workflow.created", "workflow.updated", "workflow.deleted",
    "task-queue.created", "task-queue.deleted", "task-queue.expression.updated",
    "activity.created", "activity.updated", "activity.deleted", "workspace.created",
    "workspace.updated", "workspace.deleted", "task-channel.created", "task-channel.updated",
    "task-channel.deleted",
))


def signature(url: str, params: list[tuple[str, str]], token: str) -> str:
    """X-Twilio-Signature: base64 of HMAC-SHA1, keyed by the auth token, over the URL followed
    by every POST parameter's name and value, sorted by name (then value)."""
    text = url + "".join(name + value for name, value in sorted(params))
    mac = hmac.new(token.encode(), text.encode(), hashlib.sha1).digest()
    return base64.b64encode(mac).decode()


def signed(url: str, params: list[tuple[str, str]], token: str, header: str) -> bool:
    return hmac.compare_digest(signature(url, params, token).encode(), header.encode())


class TaskRouter:
    def __init__(self, state: dict[str, Any] | None = None) -> None:
        state = state or {}
        # v1 contact id -> {"phase": new|waiting|talking|transferring|wrapping, "queue",
        #   "channel", "agent", "conversation", "tasks": [task sids]}
        self.contacts: dict[str, dict[str, Any]] = state.get("contacts", {})
        self.tasks: dict[str, str] = state.get("tasks", {})  # task sid -> v1 contact
        self.conversations: dict[str, str] = state.get("conversations", {})  # -> v1 contact
        # worker sid -> {"activity", "queues": [...], "busy": [v1 ids], "wrapping": [v1 ids],
        #                "sent": [state, queues]}
        self.workers: dict[str, dict[str, Any]] = state.get("workers", {})
        self.seen: dict[str, float] = state.get("seen", {})  # repeat key -> its event time
        self.clock: float = state.get("clock", 0)

    def to_json(self) -> dict[str, Any]:
        return {"contacts": self.contacts, "tasks": self.tasks,
                "conversations": self.conversations, "workers": self.workers,
                "seen": self.seen, "clock": self.clock}

    def feed(self, params: dict[str, str], body: bytes, token: str | None = None) -> Outcome:
        """One callback: its form parameters (first value of each), its raw body, and its
        `I-Twilio-Idempotency-Token` if any."""
        kind = params.get("EventType", "")
        if not kind:
            return malformed("bad_field", "no EventType")
        ts = _ts(params)
        if ts is None:
            return malformed("bad_field", "neither TimestampMs nor Timestamp is Unix time")
        key = f"t:{token}" if token else f"b:{digest(body)}"
        if key in self.seen:
            return skipped("repeat")
        self.seen[key] = ts
        self._forget(ts)
        line = digest(body)
        if kind == "worker.activity.update":
            outcome = self._activity(params, ts, line)
        elif kind in _HANDLERS:
            task = params.get("TaskSid", "")
            if not fits(task):
                return malformed("bad_field", f"{kind} without a usable TaskSid")
            outcome = _HANDLERS[kind](self, params, task, ts, line)
            if kind in ENDS and self.tasks.get(task) in (UNMAPPED, TRANSFERRED):
                del self.tasks[task]
        elif kind in NO_STATE:
            outcome = skipped(kind)
        else:
            outcome = skipped("unknown_event")
        self.clock = max(self.clock, ts)
        return outcome

    def _forget(self, ts: float) -> None:
        if int(ts) // 600 > int(self.clock) // 600:  # every 10 minutes of event time
            self.seen = {k: t for k, t in self.seen.items() if t > ts - REPEAT_SECONDS}

    # -- tasks -------------------------------------------------------------------------------

    def _created(self, params: dict, task: str, ts: float, line: str) -> Outcome:
        if task in self.tasks:
            return skipped("out_of_order")
        channel = CHANNELS.get(params.get("TaskChannelUniqueName", ""))
        if channel is None:
            self.tasks[task] = UNMAPPED  # its later events are skipped as this one
            return skipped("channel")
        conversation = _conversation(params.get("TaskAttributes", "")) or task
        origin = self.conversations.get(conversation)
        record = self.contacts.get(origin) if origin else None
        if record is not None and record["phase"] in ("talking", "transferring"):
            record["phase"] = "transferring"  # its queue entry will say where
            record["tasks"].append(task)
            self.tasks[task] = origin
            return Outcome()
        self.tasks[task] = task
        self.conversations[conversation] = task
        self.contacts[task] = {"phase": "new", "queue": None, "channel": channel,
                               "agent": None, "conversation": conversation, "tasks": [task],
                               "customer": _customer(params.get("TaskAttributes", ""))}
        return Outcome()

    def _entered(self, params: dict, task: str, ts: float, line: str) -> Outcome:
        record, v1 = self._record(task)
        if record is None:
            return self._unmapped(task)
        queue = params.get("TaskQueueName", "")
        if not fits(queue):
            return malformed("bad_field", "no usable TaskQueueName")
        if record["phase"] == "new":
            record.update(phase="waiting", queue=queue)
            extra = {"queue": queue}
            if record.get("customer"):
                extra["customer_id"] = record["customer"]
            return Outcome(events=[_contact("contact.queued", line, ts, v1, record, **extra)])
        if record["phase"] in ("waiting", "transferring") and queue != record["queue"]:
            agent = record["agent"] if record["phase"] == "transferring" else None
            record.update(phase="waiting", queue=queue, agent=None)
            events = [_contact("contact.transferred", line, ts, v1, record, to_queue=queue)]
            return Outcome(events=events + self._free(agent, v1, ts, line))
        return skipped("out_of_order")

    def _accepted(self, params: dict, task: str, ts: float, line: str) -> Outcome:
        record, v1 = self._record(task)
        if record is None:
            return self._unmapped(task)
        if record["phase"] != "waiting":
            return skipped("out_of_order")
        agent = params.get("WorkerSid", "")
        if not fits(agent):
            return malformed("bad_field", "reservation.accepted without a usable WorkerSid")
        record.update(phase="talking", agent=agent)
        worker = self._worker(agent)
        worker["queues"] = sorted({*worker["queues"], record["queue"]})
        worker["busy"] = sorted({*worker["busy"], v1})
        answered = _contact("contact.answered", line, ts, v1, record, agent_id=agent)
        return Outcome(events=[answered, *self._worker_state(agent, ts, line)])

    def _canceled(self, params: dict, task: str, ts: float, line: str) -> Outcome:
        record, v1 = self._record(task)
        if record is None:
            return self._unmapped(task)
        if record["phase"] == "waiting":
            self._drop(v1)
            return Outcome(events=[_contact("contact.abandoned", line, ts, v1, record)])
        if record["phase"] == "new":  # canceled before any queue: nothing to say
            self._drop(v1)
            return Outcome()
        return skipped("out_of_order")

    def _wrapup(self, params: dict, task: str, ts: float, line: str) -> Outcome:
        record, v1 = self._record(task)
        if record is None:
            return self._unmapped(task)
        if task != record["tasks"][-1]:
            return self._left(task, record)
        if record["phase"] not in ("talking", "transferring"):
            return skipped("out_of_order")
        record["phase"] = "wrapping"
        worker = self.workers.get(record["agent"])
        if worker is not None:
            worker["busy"] = [c for c in worker["busy"] if c != v1]
            worker["wrapping"] = sorted({*worker["wrapping"], v1})
        ended = _contact("contact.ended", line, ts, v1, record)
        return Outcome(events=[ended, *self._worker_state(record["agent"], ts, line)])

    def _completed(self, params: dict, task: str, ts: float, line: str) -> Outcome:
        record, v1 = self._record(task)
        if record is None:
            return self._unmapped(task)
        if task != record["tasks"][-1]:
            return self._left(task, record)
        events = []
        if record["phase"] in ("talking", "transferring"):  # completed with no wrap-up
            events.append(_contact("contact.ended", line, ts, v1, record))
        elif record["phase"] != "wrapping":
            return skipped("out_of_order")
        self._drop(v1)
        return Outcome(events=events + self._free(record["agent"], v1, ts, line))

    def _transfer_initiated(self, params: dict, task: str, ts: float, line: str) -> Outcome:
        record, _ = self._record(task)
        if record is None:
            return self._unmapped(task)
        if record["phase"] != "talking":
            return skipped("out_of_order")
        record["phase"] = "transferring"
        return Outcome()

    def _transfer_undone(self, params: dict, task: str, ts: float, line: str) -> Outcome:
        record, _ = self._record(task)
        if record is None:
            return self._unmapped(task)
        if record["phase"] != "transferring" or record["tasks"][-1] != task:
            return skipped("out_of_order")
        record["phase"] = "talking"  # failed or canceled: still with its agent
        return Outcome()

    def _left(self, task: str, record: dict) -> Outcome:
        """The original task of a transfer wraps up or completes: the contact lives on in the
        new task (its agent was freed when the contact entered the new queue)."""
        self.tasks[task] = TRANSFERRED
        record["tasks"].remove(task)
        return Outcome()

    def _record(self, task: str) -> tuple[dict[str, Any] | None, str]:
        v1 = self.tasks.get(task) or ""
        return self.contacts.get(v1), v1

    def _unmapped(self, task: str) -> Outcome:
        """An event of a task that is no contact of ours: of a channel v1 has no place for
        (skipped), the original leg of a transfer (nothing to say), or never seen."""
        gone = self.tasks.get(task)
        if gone == TRANSFERRED:
            return Outcome()
        return skipped("channel" if gone == UNMAPPED else "unknown_task")

    def _drop(self, v1: str) -> None:
        record = self.contacts.pop(v1)
        for task in record["tasks"]:
            self.tasks.pop(task, None)
        if self.conversations.get(record["conversation"]) == v1:
            del self.conversations[record["conversation"]]

    # -- workers -----------------------------------------------------------------------------

    def _worker(self, sid: str) -> dict[str, Any]:
        return self.workers.setdefault(sid, {"activity": "", "queues": [], "busy": [],
                                             "wrapping": [], "sent": None})

    def _activity(self, params: dict, ts: float, line: str) -> Outcome:
        sid = params.get("WorkerSid", "")
        if not fits(sid):
            return malformed("bad_field", "worker.activity.update without a usable WorkerSid")
        self._worker(sid)["activity"] = params.get("WorkerActivityName", "")
        return Outcome(events=self._worker_state(sid, ts, line))

    def _free(self, sid: str | None, v1: str, ts: float, line: str) -> list[Event]:
        worker = self.workers.get(sid) if sid else None
        if worker is None:
            return []
        worker["busy"] = [c for c in worker["busy"] if c != v1]
        worker["wrapping"] = [c for c in worker["wrapping"] if c != v1]
        return self._worker_state(sid, ts, line)

    def _worker_state(self, sid: str | None, ts: float, line: str) -> list[Event]:
        worker = self.workers.get(sid) if sid else None
        if worker is None:
            return []
        activity = worker["activity"].lower()
        if worker["busy"]:
            state = "busy"
        elif worker["wrapping"]:
            state = "acw"
        elif activity == "offline":
            state = "offline"
        elif activity in AVAILABLE or not activity:
            state = "available"
        else:
            state = "away"
        now = [state, worker["queues"]]
        if worker["sent"] == now:
            return []
        worker["sent"] = now
        return [{"event_id": f"twr:{line}:a:{sid}", "type": "agent.state", "ts": ts,
                 "agent_id": sid, "state": state, "queues": list(worker["queues"])}]


_HANDLERS = {
    "task.created": TaskRouter._created, "task-queue.entered": TaskRouter._entered,
    "task-queue.moved": TaskRouter._entered, "reservation.accepted": TaskRouter._accepted,
    "task.canceled": TaskRouter._canceled, "task.wrapup": TaskRouter._wrapup,
    "task.completed": TaskRouter._completed,
    "task.transfer-initiated": TaskRouter._transfer_initiated,
    "task.transfer-failed": TaskRouter._transfer_undone,
    "task.transfer-canceled": TaskRouter._transfer_undone,
}


def _ts(params: dict[str, str]) -> float | None:
    """`TimestampMs` when present, else `Timestamp` (Unix seconds)."""
    for name, scale in (("TimestampMs", 1000), ("Timestamp", 1)):
        text = params.get(name, "")
        if text.isascii() and text.isdigit() and len(text) <= 16:
            seconds = int(text) / scale
            return seconds if 0 < seconds <= MAX_TS else None
    return None


def _attributes(text: str) -> dict[str, Any]:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _conversation(text: str) -> str | None:
    conversations = _attributes(text).get("conversations")
    value = conversations.get("conversation_id") if isinstance(conversations, dict) else None
    return value if isinstance(value, str) and value else None


def _customer(text: str) -> str | None:
    value = _attributes(text).get("from")
    return value if isinstance(value, str) and fits(value) else None


def _contact(kind: str, line: str, ts: float, contact: str, record: dict,
             **fields: str) -> Event:
    return {"event_id": f"twr:{line}:c", "type": kind, "ts": ts, "channel": record["channel"],
            "contact_id": contact, **fields}
