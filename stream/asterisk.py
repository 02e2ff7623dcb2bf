"""Asterisk `queue_log` lines -> v1 events (adapters.md, "Asterisk queue_log"), pure.

A line is `epoch|callid|queue|agent|event|data1|...` as app_queue writes it. `QueueLog` is a
state machine fed lines in file order; its state (open calls, recently closed call ids,
agents) is small and JSON, so the position file can hold it with the offset. The same lines
from the same state give the same events with the same ids (derived from the line's bytes),
whatever was read before: re-reading is harmless.

Decisions where Asterisk and v1 differ (docs/adapters.md has the table):
- the caller channel's id is the contact; a call that enters a queue again after it ended
  there (an overflow after a timeout, an exit by key) is a new contact `callid#2`, `#3`...;
- ABANDON, EXITWITHTIMEOUT, EXITEMPTY, EXITWITHKEY abandon a waiting call;
- a transfer line followed by an ENTERQUEUE of the same callid within 10 s of log time is one
  `contact.transferred` at the transfer's time; else the call ended at the transfer line
  (decided by the first later line past 10 s, or by `finish` at the end of a file);
- an agent's queues are those it was added to (ADDMEMBER) and those it took a call from
  (static members appear with their first call); it is `busy` from CONNECT to the call's
  end, `offline` after a logoff, `away` while paused in any queue, else `available`; an
  `agent.state` is sent when that state or those queues change.
"""

from __future__ import annotations

from typing import Any

from .adapter import Event, Outcome, digest, fits, malformed, skipped

TRANSFER_SECONDS = 10  # adapters.md: transfer line, then ENTERQUEUE within 10 s
REENTRY_SECONDS = 3600  # how long a closed call id is remembered to number a re-entry
IDLE_CALL_SECONDS = 86_400  # a call with no line for a day is forgotten (never ended by us)
MAX_EPOCH = 253_402_300_799  # 9999-12-31T23:59:59Z (events.md 1.1)

ABANDONS = frozenset(("ABANDON", "EXITWITHTIMEOUT", "EXITEMPTY", "EXITWITHKEY"))
COMPLETES = frozenset(("COMPLETECALLER", "COMPLETEAGENT"))
TRANSFERS = frozenset(("TRANSFER", "BLINDTRANSFER", "ATTENDEDTRANSFER"))
LOGINS = frozenset(("AGENTLOGIN", "AGENTCALLBACKLOGIN"))
LOGOFFS = frozenset(("AGENTLOGOFF", "AGENTCALLBACKLOGOFF"))
PAUSES = frozenset(("PAUSE", "PAUSEALL", "PAUSECUSTOM"))
UNPAUSES = frozenset(("UNPAUSE", "UNPAUSEALL"))
# Events app_queue writes that carry no contact or agent state: skipped and counted.
NO_STATE = frozenset((
    "RINGNOANSWER", "RINGCANCELED", "CONFIGRELOAD", "QUEUESTART", "SYSCOMPAT", "AGENTDUMP",
    "DID", "INFO", "JOINEMPTY", "FULL", "JOINUNAVAIL", "QUEUEEND",
))
ALL_QUEUES = "*"  # paused with no queue named (PAUSEALL before any membership is known)
NO_QUEUE = ("", "NONE")


class QueueLog:
    """Feed lines in order; `feed` returns each line's `Outcome`."""

    def __init__(self, state: dict[str, Any] | None = None) -> None:
        state = state or {}
        # callid -> {"contact", "queue", "phase" (waiting|talking|transfer), "agent",
        #            "last", and for a transfer: "at" (ts), "line" (digest)}
        self.calls: dict[str, dict[str, Any]] = state.get("calls", {})
        self.closed: dict[str, list[int]] = state.get("closed", {})  # callid -> [contacts, ts]
        # agent -> {"queues": [...], "paused": [...], "off": bool, "calls": [...],
        #           "sent": [state, [queues]] (the last agent.state sent)}
        self.agents: dict[str, dict[str, Any]] = state.get("agents", {})
        self.clock: int = state.get("clock", 0)

    def to_json(self) -> dict[str, Any]:
        return {"calls": self.calls, "closed": self.closed, "agents": self.agents,
                "clock": self.clock}

    # -- lines -----------------------------------------------------------------------------

    def feed(self, raw: bytes) -> Outcome:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return malformed("not_utf8", f"not UTF-8 at byte {exc.start}")
        text = text.rstrip("\r\n")
        if not text.strip():
            return Outcome()  # an empty line says nothing: neither skipped nor malformed
        fields = text.split("|")
        if len(fields) < 5:
            return malformed("too_few_fields",
                             f"{len(fields)} of the 5 fields epoch|callid|queue|agent|event")
        epoch, callid, queue, agent, event = fields[:5]
        if not epoch.isdigit() or not epoch.isascii():
            return malformed("bad_epoch", f"epoch {epoch[:40]!r} is not whole Unix seconds")
        ts = int(epoch) if len(epoch) <= 12 else MAX_EPOCH + 1  # int() of 5000 digits raises
        if not 0 < ts <= MAX_EPOCH:
            return malformed("bad_ts", f"epoch {ts} is outside years 1970-9999")
        if not event or not event.isupper():
            return malformed("bad_event", f"event {event[:40]!r} is not an event name")
        line = _Line(ts, callid, queue, agent, event, fields[5:], digest(raw.rstrip(b"\r\n")))
        # A transfer's own call continues only by an ENTERQUEUE; any other of its lines ends it.
        ending = callid if event != "ENTERQUEUE" else None
        outcome = Outcome(events=self._settle(ts, ending))
        handled = self._line(line)
        outcome.events += handled.events
        outcome.skipped, outcome.malformed = handled.skipped, handled.malformed
        self.clock = max(self.clock, ts)
        return outcome

    def finish(self) -> list[Event]:
        """The end of the input: a transfer still waiting for its ENTERQUEUE ended."""
        return self._settle(None, None)

    def _line(self, line: _Line) -> Outcome:
        event = line.event
        if event == "ENTERQUEUE":
            return self._enter(line)
        if event == "CONNECT":
            return self._connect(line)
        if event in ABANDONS or event in COMPLETES or event in TRANSFERS:
            return self._leave(line)
        if event in ("ADDMEMBER", "REMOVEMEMBER") or event in PAUSES or event in UNPAUSES \
                or event in LOGINS or event in LOGOFFS:
            return self._member(line)
        if event in NO_STATE:
            return skipped(event.lower())
        return skipped("unknown_event")

    # -- calls -----------------------------------------------------------------------------

    def _enter(self, line: _Line) -> Outcome:
        if not fits(line.queue) or line.queue in NO_QUEUE:
            return malformed("bad_field", f"ENTERQUEUE names no usable queue ({line.queue!r})")
        if not fits(line.callid) or line.callid == "NONE":
            return malformed("bad_field", f"ENTERQUEUE names no usable callid ({line.callid!r})")
        call = self.calls.get(line.callid)
        if call is not None and call["phase"] == "transfer":  # within 10 s: _settle kept it
            call.update(phase="waiting", queue=line.queue, agent=None, last=line.ts)
            return Outcome(events=[_contact(
                "contact.transferred", call["line"], "t", call["at"], call["contact"],
                to_queue=line.queue)])
        if call is not None:
            return skipped("out_of_order")  # already waiting or talking: one queue at a time
        number = self.closed.pop(line.callid, [0, 0])[0] + 1
        contact = line.callid if number == 1 else f"{line.callid}#{number}"
        self.calls[line.callid] = {"contact": contact, "number": number, "queue": line.queue,
                                   "phase": "waiting", "agent": None, "last": line.ts}
        caller = line.data[1] if len(line.data) > 1 else ""
        extra = {"queue": line.queue}
        if caller and caller.lower() not in ("unknown", "anonymous") and fits(caller):
            extra["customer_id"] = caller
        return Outcome(events=[_contact("contact.queued", line.digest, "q", line.ts, contact,
                                        **extra)])

    def _connect(self, line: _Line) -> Outcome:
        call = self.calls.get(line.callid)
        if call is None:
            return skipped("unknown_call")
        if call["phase"] != "waiting":
            return skipped("out_of_order")
        if not fits(line.agent) or line.agent == "NONE":
            return malformed("bad_field", f"CONNECT names no usable agent ({line.agent!r})")
        call.update(phase="talking", agent=line.agent, last=line.ts)
        events = [_contact("contact.answered", line.digest, "c", line.ts, call["contact"],
                           agent_id=line.agent)]
        agent = self._agent(line.agent)
        if call["queue"] not in agent["queues"]:
            agent["queues"] = sorted({*agent["queues"], call["queue"]})
        agent["calls"] = sorted({*agent["calls"], line.callid})
        return Outcome(events=events + self._agent_state(line.agent, line))

    def _leave(self, line: _Line) -> Outcome:
        call = self.calls.get(line.callid)
        if call is None:
            return skipped("unknown_call")
        phase, event = call["phase"], line.event
        if phase != ("waiting" if event in ABANDONS else "talking"):
            return skipped("out_of_order")
        contact, agent = call["contact"], call["agent"]
        if event in ABANDONS:
            self._close(line.callid, line.ts)
            return Outcome(events=[_contact("contact.abandoned", line.digest, "c", line.ts,
                                            contact)])
        if event in TRANSFERS:  # the outcome waits for an ENTERQUEUE within 10 s
            call.update(phase="transfer", at=line.ts, line=line.digest, agent=None,
                        last=line.ts)
            events = []
        else:
            self._close(line.callid, line.ts)
            events = [_contact("contact.ended", line.digest, "c", line.ts, contact)]
        return Outcome(events=events + self._release(agent, line.callid, line))

    def _close(self, callid: str, ts: int) -> None:
        self.closed[callid] = [self.calls.pop(callid)["number"], ts]

    def _release(self, agent: str | None, callid: str, line: _Line) -> list[Event]:
        if agent is None or agent not in self.agents:
            return []
        record = self.agents[agent]
        record["calls"] = [c for c in record["calls"] if c != callid]
        return self._agent_state(agent, line)

    def _settle(self, ts: int | None, ending: str | None) -> list[Event]:
        """End the transfers no ENTERQUEUE can continue any more: by log time (`ts` more than
        10 s after), by another line of the same call (`ending`), or at the end (`ts` None).
        Also forget what is too old to matter, once per hour of log time."""
        events = []
        for cid, call in list(self.calls.items()):
            if call["phase"] != "transfer":
                continue
            if ts is None or ts > call["at"] + TRANSFER_SECONDS or cid == ending:
                self._close(cid, call["at"])
                events.append(_contact("contact.ended", call["line"], "e", call["at"],
                                       call["contact"]))
        if ts is not None and ts // 3600 > self.clock // 3600:
            self._forget(ts)
        return events

    def _forget(self, ts: int) -> None:
        self.closed = {c: v for c, v in self.closed.items() if v[1] > ts - REENTRY_SECONDS}
        for callid, call in list(self.calls.items()):
            if call["last"] <= ts - IDLE_CALL_SECONDS:
                del self.calls[callid]
                for agent in self.agents.values():
                    if callid in agent["calls"]:
                        agent["calls"].remove(callid)

    # -- agents ----------------------------------------------------------------------------

    def _agent(self, name: str) -> dict[str, Any]:
        return self.agents.setdefault(name, {"queues": [], "paused": [], "off": False,
                                             "calls": [], "sent": None})

    def _member(self, line: _Line) -> Outcome:
        if not fits(line.agent) or line.agent == "NONE":
            return malformed("bad_field", f"{line.event} names no usable agent "
                                          f"({line.agent!r})")
        named = line.queue not in NO_QUEUE
        if named and not fits(line.queue):
            return malformed("bad_field", f"{line.event}: queue name too long")
        agent = self._agent(line.agent)
        queues, paused = set(agent["queues"]), set(agent["paused"])
        event = line.event
        if event == "ADDMEMBER" and named:
            queues.add(line.queue)
        elif event == "REMOVEMEMBER" and named:
            queues.discard(line.queue)
            paused.discard(line.queue)
        elif event in PAUSES:
            paused |= {line.queue} if named and event != "PAUSEALL" else (queues or {ALL_QUEUES})
        elif event in UNPAUSES:
            paused = paused - {line.queue, ALL_QUEUES} if named and event != "UNPAUSEALL" \
                else set()
        elif event in LOGINS:
            agent["off"] = False
        elif event in LOGOFFS:
            agent["off"] = True
        agent["queues"], agent["paused"] = sorted(queues), sorted(paused)
        return Outcome(events=self._agent_state(line.agent, line))

    def _agent_state(self, name: str, line: _Line) -> list[Event]:
        agent = self.agents[name]
        if agent["off"]:
            state = "offline"
        elif agent["calls"]:
            state = "busy"
        elif agent["paused"]:
            state = "away"
        else:
            state = "available"
        now = [state, agent["queues"]]
        if agent["sent"] == now:
            return []
        agent["sent"] = now
        return [{"event_id": f"ast:{line.digest}:a", "type": "agent.state", "ts": line.ts,
                 "agent_id": name, "state": state, "queues": list(agent["queues"])}]


class _Line:
    __slots__ = ("agent", "callid", "data", "digest", "event", "queue", "ts")

    def __init__(self, ts: int, callid: str, queue: str, agent: str, event: str,
                 data: list[str], digest: str) -> None:
        self.ts, self.callid, self.queue, self.agent = ts, callid, queue, agent
        self.event, self.data, self.digest = event, data, digest


def _contact(kind: str, line: str, suffix: str, ts: int, contact: str, **fields: str) -> Event:
    return {"event_id": f"ast:{line}:{suffix}", "type": kind, "ts": ts, "channel": "voice",
            "contact_id": contact, **fields}
