"""A seeded discrete-event simulation of a contact centre that emits v1 events (events.md).

Pure and deterministic: no I/O, no clock, no asyncio. One `random.Random(seed)` is consumed in
the order the simulation processes its actions, so the same seed, start and config give the
same events however the caller slices time (`events_until` in small steps or `run` at once).

Model, per channel (voice, chat, social):
- arrivals: non-homogeneous Poisson per channel, sampled by thinning against an hourly rate
  profile (the default shape is the weekday arrival curve of the Anonymous Bank 1999 data,
  Technion SEE lab, Guedj & Mandelbaum); the queue is drawn by weight;
- each customer has an exponential patience and abandons if still waiting when it runs out;
  a few waiting contacts are rerouted (`contact.transferred` while waiting);
- agents have skills (queues of one channel), work one contact at a time (chat concurrency is
  not modelled), follow daily shifts sized to the profile, take short breaks (`away`), and
  pick the longest-waiting contact of their queues; a contact goes to the longest-idle agent;
- a conversation is a lognormal talk time cut by 0..n holds; it ends (`resolved`,
  `wrap_seconds`; the agent goes `acw` then `available`) or is transferred to another queue
  of the same channel, sometimes straight from a hold (the hold then ends there, events.md);
- some ended contacts get a survey (csat, nps or ces) seconds to minutes later;
- a share of arrivals are recent customers coming back, on any channel (cases: repeats,
  reopenings, multi-channel cases), drawn from a random stream of their own so that all else
  is what the seed gives without them;
- optionally an incident (`Incident`, what `ccmon demo` opens with): for a while one queue
  gets a surge of impatient callers while the agents skilled for it are in a huddle (`away`),
  so the queue builds up, callers abandon, and it drains when the huddle ends.

Simulated time starts at `start` (Unix seconds), which the profile treats as `start_hour`
o'clock (09:00 by default) so that a run always begins in the working day.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

Event = dict[str, Any]

# Weekday (Sun-Thu) arrivals per hour of the Anonymous Bank 1999 data, peak = 1.
BANK_1999_PROFILE: tuple[float, ...] = (
    0.04, 0.02, 0.01, 0.01, 0.01, 0.01, 0.05, 0.31, 0.66, 0.87, 1.0, 0.88,
    0.79, 0.83, 0.87, 0.86, 0.86, 0.7, 0.58, 0.47, 0.44, 0.45, 0.41, 0.31,
)


@dataclass(frozen=True)
class ChannelConfig:
    queues: dict[str, float]  # queue -> share of the channel's arrivals
    peak_per_hour: float  # arrivals per hour at the profile's peak
    talk_mean_s: float  # lognormal talk time (for chat/social: the whole conversation)
    talk_sigma: float
    patience_mean_s: float  # exponential patience
    wrap_mean_s: float
    hold_probability: float  # chance of a first hold; each further hold has half of it
    hold_mean_s: float
    transfer_waiting_probability: float  # rerouted while waiting
    transfer_talking_probability: float  # transferred by the agent
    survey_probability: float
    survey_kinds: dict[str, float]  # kind -> weight
    skills_per_agent: int  # queues an agent is skilled for (at most all of the channel's)
    staffing: float = 1.0  # agents on shift per Erlang of offered load at that hour
    min_agents: int = 1  # agents on shift even at night


def default_channels() -> dict[str, ChannelConfig]:
    return {
        "voice": ChannelConfig(
            queues={"billing": 0.35, "sales": 0.25, "support": 0.40}, peak_per_hour=240,
            talk_mean_s=240, talk_sigma=0.8, patience_mean_s=150, wrap_mean_s=25,
            hold_probability=0.3, hold_mean_s=35, transfer_waiting_probability=0.04,
            transfer_talking_probability=0.06, survey_probability=0.25,
            survey_kinds={"csat": 0.5, "nps": 0.3, "ces": 0.2}, skills_per_agent=2,
            staffing=1.2, min_agents=2),
        "chat": ChannelConfig(
            queues={"support": 0.6, "sales": 0.4}, peak_per_hour=90,
            talk_mean_s=420, talk_sigma=0.7, patience_mean_s=240, wrap_mean_s=15,
            hold_probability=0.1, hold_mean_s=60, transfer_waiting_probability=0.03,
            transfer_talking_probability=0.05, survey_probability=0.35,
            survey_kinds={"csat": 0.6, "ces": 0.4}, skills_per_agent=2,
            staffing=1.2, min_agents=1),
        "social": ChannelConfig(
            queues={"care": 1.0}, peak_per_hour=30,
            talk_mean_s=600, talk_sigma=0.9, patience_mean_s=1800, wrap_mean_s=30,
            hold_probability=0.0, hold_mean_s=0, transfer_waiting_probability=0.0,
            transfer_talking_probability=0.0, survey_probability=0.15,
            survey_kinds={"csat": 0.7, "nps": 0.3}, skills_per_agent=1,
            staffing=1.0, min_agents=1),
    }


@dataclass(frozen=True)
class Incident:
    """A surge on one queue while its agents are away: a queue that builds up and drains."""

    channel: str
    queue: str
    start_s: float  # after the simulation's start
    surge_s: float  # how long the surge lasts
    huddle_s: float  # how long the agents are away: longer, so the queue drains by abandons too
    surge_per_s: float  # extra arrivals per second, on top of the usual ones
    patience_mean_s: float  # of the surge's callers: a surge's queue drains by abandons too


# What `ccmon demo` opens with: voice billing builds up from its first seconds (the example
# rule `queue-building` fires within half a minute) and drains after 35 s, so a supervisor
# sees a queue grow, an alert fire and resolve, and agents change state in the first minute.
OPENING_INCIDENT = Incident(channel="voice", queue="billing", start_s=2.0, surge_s=20.0,
                            huddle_s=30.0, surge_per_s=1.2, patience_mean_s=10.0)


@dataclass(frozen=True)
class SimConfig:
    channels: dict[str, ChannelConfig] = field(default_factory=default_channels)
    profile: tuple[float, ...] = BANK_1999_PROFILE  # 24 hourly rate factors, peak 1
    start_hour: float = 9.0  # profile hour at the simulation's start
    shift_hours: int = 8
    break_every_s: float = 2 * 3600
    break_mean_s: float = 10 * 60
    resolved_probability: float = 0.8
    customers: int = 50_000  # size of the customer base (repeat callers share an id)
    repeat_probability: float = 0.25  # an arrival is one of the recent customers again
    recent_customers: int = 200
    max_transfers: int = 2
    incident: Incident | None = None

    def scaled(self, factor: float) -> SimConfig:
        """The same centre `factor` times bigger: more arrivals and proportionally more staff."""
        return replace(self, channels={
            name: replace(ch, peak_per_hour=ch.peak_per_hour * factor)
            for name, ch in self.channels.items()})


def format_ts(t: float) -> str:
    """RFC 3339 UTC with milliseconds: 2026-11-22T09:30:00.250Z."""
    millis = round(t * 1000)
    seconds, ms = divmod(millis, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{ms:03d}Z"


def _ms(t: float) -> float:
    """Times are kept on the millisecond grid so an event's `ts` is exactly its sim time."""
    return round(t * 1000) / 1000


@dataclass
class _Agent:
    agent_id: str
    channel: str
    skills: list[str]
    shift_start_hour: int
    state: str = "offline"
    idle_since: float = 0.0
    on_shift: bool = False
    break_due: bool = False
    huddle_due: bool = False  # joins the incident's huddle once free
    in_huddle: bool = False
    contact: _Contact | None = None


@dataclass
class _Contact:
    contact_id: str
    channel: str
    queue: str
    customer_id: str
    patience_s: float
    queued_at: float = 0.0
    first_queued_at: float = 0.0
    epoch: int = 0  # bumped at each change so stale scheduled actions are ignored
    waiting: bool = False
    transfers: int = 0
    agent: _Agent | None = None


class Simulation:
    """Contact-centre simulation; `events_until(t)` yields all events with ts <= t in ts order."""

    def __init__(self, seed: int, start: float, config: SimConfig | None = None) -> None:
        self.seed = seed
        self.start = _ms(start)
        self.config = config or SimConfig()
        self.now = self.start
        self._rng = random.Random(seed)
        self._customer_rng = random.Random(f"{seed}/customers")
        self._recent: deque[str] = deque(maxlen=self.config.recent_customers)
        self._actions: list[tuple[float, int, str, tuple[Any, ...]]] = []
        self._seq = itertools.count()
        self._event_numbers = itertools.count(1)
        self._contact_numbers = itertools.count(1)
        self._out: list[Event] = []
        self._waiting: dict[str, list[_Contact]] = {}  # queue -> FIFO of waiting contacts
        self._agents: list[_Agent] = []
        self._peak_rate = max(self.config.profile)
        for channel, ch in self.config.channels.items():
            for queue in ch.queues:
                self._waiting.setdefault(f"{channel}:{queue}", [])
            self._hire(channel, ch)
            self._schedule(self._next_arrival_time(self.start, ch), "arrival", channel)
        self._open()
        if (incident := self.config.incident) is not None:
            # Its own random stream: before and around it, the seed gives what it gives without.
            self._incident_rng = random.Random(f"{seed}/incident")
            self._schedule(self.start + incident.start_s, "incident_start")
            self._schedule(self.start + incident.start_s + incident.huddle_s, "incident_end")

    # -- public API ------------------------------------------------------------------------------

    def events_until(self, t: float) -> list[Event]:
        """Advance to time `t` (Unix seconds) and return the events that happened, ts order."""
        while self._actions and self._actions[0][0] <= t:
            at, _, kind, args = heapq.heappop(self._actions)
            self.now = at
            getattr(self, f"_on_{kind}")(*args)
        self.now = max(self.now, t)
        out, self._out = self._out, []
        return out

    def run(self, duration_s: float) -> Iterator[Event]:
        """Every event of the next `duration_s` simulated seconds, generated an hour at a time."""
        end = self.now + duration_s
        while self.now < end:
            yield from self.events_until(min(end, self.now + 3600))

    # -- time helpers ----------------------------------------------------------------------------

    def _hour_of_day(self, t: float) -> float:
        return (self.config.start_hour + (t - self.start) / 3600) % 24

    def _profile(self, t: float) -> float:
        """Hourly profile, linearly interpolated between hour midpoints."""
        profile = self.config.profile
        h = self._hour_of_day(t) - 0.5
        lo = math.floor(h)
        frac = h - lo
        return profile[lo % 24] * (1 - frac) + profile[(lo + 1) % 24] * frac

    def _schedule(self, at: float, kind: str, *args: Any) -> None:
        heapq.heappush(self._actions, (_ms(at), next(self._seq), kind, args))

    def _emit(self, type_: str, channel: str | None, **fields: Any) -> None:
        event: Event = {
            "event_id": f"sim-{self.seed}-{next(self._event_numbers)}",
            "type": type_,
            "ts": format_ts(self.now),
        }
        if channel is not None:
            event["channel"] = channel
        event.update(fields)
        self._out.append(event)

    # -- staffing --------------------------------------------------------------------------------

    def _hire(self, channel: str, ch: ChannelConfig) -> None:
        """One agent per daily shift; shifts start so that on-duty agents follow the load."""
        hours = self.config.shift_hours
        offered_erlangs = [ch.peak_per_hour * p / self._peak_rate * ch.talk_mean_s / 3600
                           for p in self.config.profile]
        needed = [max(ch.min_agents, math.ceil(e * ch.staffing + 0.5)) for e in offered_erlangs]
        starts: list[int] = []
        for h in range(48):  # two passes so night shifts wrap around midnight
            on_duty = sum(1 for s in starts if 0 <= h - s < hours)
            new = max(0, needed[h % 24] - on_duty)
            starts.extend([h] * new)
        daily = sorted(s % 24 for s in starts if s >= 24)
        queues = list(ch.queues)
        for n, start_hour in enumerate(daily):
            k = min(ch.skills_per_agent, len(queues))
            skills = [queues[(n + i) % len(queues)] for i in range(k)]  # rotation covers all
            self._agents.append(_Agent(f"{channel}-agent-{n + 1:03d}", channel, skills, start_hour))

    def _open(self) -> None:
        """At the start, agents on shift are available and the others offline."""
        hours = self.config.shift_hours
        now_h = self._hour_of_day(self.start)
        for agent in self._agents:
            into_shift = (now_h - agent.shift_start_hour) % 24
            if into_shift < hours:
                self._begin_shift(agent, ends_in=(hours - into_shift) * 3600)
            else:
                self._emit_state(agent, "offline")
                self._schedule(self.start + (24 - into_shift) * 3600, "shift_start", agent)

    def _begin_shift(self, agent: _Agent, ends_in: float) -> None:
        agent.on_shift = True
        self._schedule(self.now + ends_in, "shift_end", agent)
        t = self.now + self.config.break_every_s * self._rng.uniform(0.5, 1.0)
        while t < self.now + ends_in - 1800:
            self._schedule(t, "break_due", agent)
            t += self.config.break_every_s * self._rng.uniform(0.8, 1.2)
        self._become_free(agent)

    def _on_shift_start(self, agent: _Agent) -> None:
        self._begin_shift(agent, ends_in=self.config.shift_hours * 3600)

    def _on_shift_end(self, agent: _Agent) -> None:
        agent.on_shift = False
        self._schedule(self.now + (24 - self.config.shift_hours) * 3600, "shift_start", agent)
        if agent.state in ("available", "away"):
            self._emit_state(agent, "offline")
        # busy or acw: goes offline once the contact is wrapped up (`_become_free`)

    def _on_break_due(self, agent: _Agent) -> None:
        if not agent.on_shift or agent.state == "away":
            return
        if agent.state == "available":
            self._take_break(agent)
        else:
            agent.break_due = True

    def _take_break(self, agent: _Agent) -> None:
        agent.break_due = False
        self._emit_state(agent, "away")
        self._schedule(self.now + self._rng.expovariate(1 / self.config.break_mean_s) + 60,
                       "break_end", agent)

    def _on_break_end(self, agent: _Agent) -> None:
        if agent.state == "away" and not agent.in_huddle:
            self._become_free(agent)

    def _emit_state(self, agent: _Agent, state: str) -> None:
        agent.state = state
        if state == "available":
            agent.idle_since = self.now
        self._emit("agent.state", None, agent_id=agent.agent_id, state=state,
                   queues=list(agent.skills))

    def _become_free(self, agent: _Agent) -> None:
        """The agent has nothing to do: leave, take a due break, or take the next contact."""
        agent.contact = None
        if not agent.on_shift:
            self._emit_state(agent, "offline")
        elif agent.huddle_due:
            agent.huddle_due, agent.in_huddle = False, True
            self._emit_state(agent, "away")
        elif agent.break_due:
            self._take_break(agent)
        elif (contact := self._longest_waiting(agent)) is not None:
            self._answer(contact, agent)
        else:
            self._emit_state(agent, "available")

    def _longest_waiting(self, agent: _Agent) -> _Contact | None:
        heads = [q[0] for s in agent.skills if (q := self._waiting[f"{agent.channel}:{s}"])]
        return min(heads, key=lambda c: c.queued_at) if heads else None

    def _longest_idle(self, channel: str, queue: str) -> _Agent | None:
        idle = [a for a in self._agents if a.channel == channel and a.state == "available"
                and queue in a.skills]
        return min(idle, key=lambda a: a.idle_since) if idle else None

    # -- the incident ----------------------------------------------------------------------------

    def _on_incident_start(self) -> None:
        incident = self.config.incident
        assert incident is not None
        for agent in self._agents:
            if agent.channel == incident.channel and incident.queue in agent.skills \
                    and agent.on_shift:
                if agent.state == "available":
                    agent.in_huddle = True
                    self._emit_state(agent, "away")
                elif agent.state != "away":
                    agent.huddle_due = True  # after the contact in hand
        self._schedule(self.now + self._incident_rng.expovariate(incident.surge_per_s),
                       "surge_arrival")

    def _on_surge_arrival(self) -> None:
        incident = self.config.incident
        assert incident is not None
        if self.now >= self.start + incident.start_s + incident.surge_s:
            return
        rng = self._incident_rng
        self._schedule(self.now + rng.expovariate(incident.surge_per_s), "surge_arrival")
        contact = _Contact(
            contact_id=f"sim{self.seed}-{incident.channel}-{next(self._contact_numbers):07d}",
            channel=incident.channel, queue=incident.queue,
            customer_id=f"cust-{rng.randrange(self.config.customers):06d}",
            patience_s=rng.expovariate(1 / incident.patience_mean_s),
            first_queued_at=self.now)
        self._emit("contact.queued", contact.channel, contact_id=contact.contact_id,
                   queue=contact.queue, customer_id=contact.customer_id)
        self._enqueue(contact)

    def _on_incident_end(self) -> None:
        for agent in self._agents:
            agent.huddle_due = False
            if agent.in_huddle:
                agent.in_huddle = False
                if agent.state == "away":
                    self._become_free(agent)

    # -- contacts --------------------------------------------------------------------------------

    def _next_arrival_time(self, after: float, ch: ChannelConfig) -> float:
        """Thinning: candidates at the peak rate, each kept with probability rate(t)/peak."""
        t = after
        peak_per_s = ch.peak_per_hour / 3600
        while True:
            t += self._rng.expovariate(peak_per_s)
            if self._rng.random() * self._peak_rate < self._profile(t):
                return t

    def _customer(self) -> str:
        drawn = f"cust-{self._rng.randrange(self.config.customers):06d}"  # as without repeats
        rng = self._customer_rng
        if self._recent and rng.random() < self.config.repeat_probability:
            drawn = rng.choice(self._recent)
        self._recent.append(drawn)
        return drawn

    def _pick(self, weights: dict[str, float]) -> str:
        return self._rng.choices(list(weights), weights=list(weights.values()))[0]

    def _on_arrival(self, channel: str) -> None:
        ch = self.config.channels[channel]
        self._schedule(self._next_arrival_time(self.now, ch), "arrival", channel)
        contact = _Contact(
            contact_id=f"sim{self.seed}-{channel}-{next(self._contact_numbers):07d}",
            channel=channel, queue=self._pick(ch.queues),
            customer_id=self._customer(),
            patience_s=self._rng.expovariate(1 / ch.patience_mean_s),
            first_queued_at=self.now)
        self._emit("contact.queued", channel, contact_id=contact.contact_id,
                   queue=contact.queue, customer_id=contact.customer_id)
        self._enqueue(contact)

    def _enqueue(self, contact: _Contact) -> None:
        """The contact starts waiting in `contact.queue` (arrival or transfer)."""
        contact.epoch += 1
        contact.queued_at = self.now
        agent = self._longest_idle(contact.channel, contact.queue)
        if agent is not None:
            self._answer(contact, agent)
            return
        contact.waiting = True
        self._waiting[f"{contact.channel}:{contact.queue}"].append(contact)
        # Patience runs from the first arrival: a rerouted customer does not start afresh.
        gives_up = max(self.now, contact.first_queued_at + contact.patience_s)
        self._schedule(gives_up, "patience_out", contact, contact.epoch)
        ch = self.config.channels[contact.channel]
        if (len(ch.queues) > 1 and contact.transfers < self.config.max_transfers
                and self._rng.random() < ch.transfer_waiting_probability):
            self._schedule(self.now + self._rng.uniform(5, 90), "reroute", contact, contact.epoch)

    def _leave_queue(self, contact: _Contact) -> None:
        contact.waiting = False
        contact.epoch += 1
        self._waiting[f"{contact.channel}:{contact.queue}"].remove(contact)

    def _on_patience_out(self, contact: _Contact, epoch: int) -> None:
        if contact.epoch == epoch and contact.waiting:
            self._leave_queue(contact)
            self._emit("contact.abandoned", contact.channel, contact_id=contact.contact_id)

    def _on_reroute(self, contact: _Contact, epoch: int) -> None:
        if contact.epoch == epoch and contact.waiting:
            self._leave_queue(contact)
            self._transfer(contact)

    def _transfer(self, contact: _Contact) -> None:
        ch = self.config.channels[contact.channel]
        others = {q: w for q, w in ch.queues.items() if q != contact.queue}
        contact.queue = self._pick(others)
        contact.transfers += 1
        self._emit("contact.transferred", contact.channel, contact_id=contact.contact_id,
                   to_queue=contact.queue)
        self._enqueue(contact)

    def _answer(self, contact: _Contact, agent: _Agent) -> None:
        if contact.waiting:
            self._leave_queue(contact)
        contact.agent, agent.contact = agent, contact
        contact.epoch += 1
        self._emit("contact.answered", contact.channel, contact_id=contact.contact_id,
                   agent_id=agent.agent_id)
        self._emit_state(agent, "busy")
        self._schedule_conversation(contact)

    def _schedule_conversation(self, contact: _Contact) -> None:
        """Talk time cut into pieces by holds; the last step ends or transfers the contact."""
        ch = self.config.channels[contact.channel]
        rng = self._rng
        mu = math.log(ch.talk_mean_s) - ch.talk_sigma**2 / 2
        talk = max(5.0, rng.lognormvariate(mu, ch.talk_sigma))
        holds = 0
        p = ch.hold_probability
        while holds < 4 and rng.random() < p:
            holds += 1
            p /= 2
        cuts = sorted(rng.uniform(0, talk) for _ in range(holds))
        t = self.now
        previous = 0.0
        for cut in cuts:
            t += cut - previous
            previous = cut
            self._schedule(t, "hold_start", contact, contact.epoch)
            t += max(1.0, rng.expovariate(1 / ch.hold_mean_s))
            self._schedule(t, "hold_end", contact, contact.epoch)
        t += talk - previous
        transfer = (len(ch.queues) > 1 and contact.transfers < self.config.max_transfers
                    and rng.random() < ch.transfer_talking_probability)
        if transfer and rng.random() < 0.5:
            # A blind transfer from hold: the hold is left open and ends with the transfer.
            self._schedule(t - min(1.0, (talk - previous) / 2), "hold_start", contact,
                           contact.epoch)
        self._schedule(t, "transfer_out" if transfer else "end", contact, contact.epoch)

    def _on_hold_start(self, contact: _Contact, epoch: int) -> None:
        if contact.epoch == epoch:
            self._emit("contact.hold_started", contact.channel, contact_id=contact.contact_id)

    def _on_hold_end(self, contact: _Contact, epoch: int) -> None:
        if contact.epoch == epoch:
            self._emit("contact.hold_ended", contact.channel, contact_id=contact.contact_id)

    def _release(self, contact: _Contact, wrap_s: float) -> None:
        agent = contact.agent
        assert agent is not None
        contact.agent = None
        contact.epoch += 1
        self._emit_state(agent, "acw")
        self._schedule(self.now + wrap_s, "wrap_done", agent)

    def _on_wrap_done(self, agent: _Agent) -> None:
        self._become_free(agent)

    def _on_transfer_out(self, contact: _Contact, epoch: int) -> None:
        if contact.epoch != epoch:
            return
        self._release(contact, wrap_s=self._rng.uniform(3, 15))
        self._transfer(contact)

    def _on_end(self, contact: _Contact, epoch: int) -> None:
        if contact.epoch != epoch:
            return
        ch = self.config.channels[contact.channel]
        rng = self._rng
        wrap_s = float(round(rng.expovariate(1 / ch.wrap_mean_s)))
        resolved = rng.random() < self.config.resolved_probability * (0.8 ** contact.transfers)
        self._emit("contact.ended", contact.channel, contact_id=contact.contact_id,
                   resolved=resolved, wrap_seconds=wrap_s)
        self._release(contact, wrap_s)
        if rng.random() < ch.survey_probability:
            delay = rng.lognormvariate(math.log(120), 1.0)  # median 2 min, often 10 s to 20 min
            waited = self.now - contact.first_queued_at
            self._schedule(self.now + delay, "survey", contact, self._pick(ch.survey_kinds),
                           resolved, waited)

    def _on_survey(self, contact: _Contact, kind: str, resolved: bool, waited: float) -> None:
        # Satisfaction in [0, 1]: resolved contacts and short waits score higher.
        mood = (0.65 if resolved else 0.3) - min(waited, 600) / 3000 + self._rng.gauss(0, 0.2)
        mood = min(1.0, max(0.0, mood))
        low, high = {"csat": (1, 5), "nps": (0, 10), "ces": (1, 7)}[kind]
        if kind == "ces":  # customer effort: lower is better
            mood = 1 - mood
        score = low + round(mood * (high - low))
        self._emit("survey.submitted", contact.channel, contact_id=contact.contact_id,
                   kind=kind, score=score, queue=contact.queue)
