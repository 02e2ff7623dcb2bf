"""The Anonymous Bank 1999 converter on the real files (Technion SEE lab, Guedj & Mandelbaum).

Counts are checked against third_party_daily_metrics_1999.csv, whose definitions the data's
README documents: `total_calls` = all records incl. PHANTOM, `hangs` = HANG records (also those
that hung up in the VRU, which we do not emit: they never reached a queue).
"""

from __future__ import annotations

import csv
import json
import os
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from ccmon.stream import bank
from tests.support import ROOT

# The project's shared data sits beside the repository (`../shared/data/`), in CI too.
DATA = ROOT.parent / "shared" / "data" / "anonymous-bank-1999"
JANUARY = DATA / "01_January.txt.gz"
AUGUST = DATA / "08_August_reconstructed_from_barntrosna_ods.tsv.gz"

if not JANUARY.exists():
    # Outside the project's machines the data may be absent: skip there, never in CI.
    if os.environ.get("CI"):
        raise RuntimeError(f"the Anonymous Bank data is missing: {DATA}")
    pytestmark = pytest.mark.skip(reason=f"the Anonymous Bank data is not at {DATA}")


def published(date: str) -> dict[str, str]:
    with open(DATA / "third_party_daily_metrics_1999.csv", newline="") as handle:
        return next(row for row in csv.DictReader(handle) if row["date"] == date)


@pytest.fixture(scope="module")
def january() -> list[dict[str, str]]:
    return list(bank.read_month(str(JANUARY)))


def rows_of(rows: list[dict[str, str]], yymmdd: str) -> list[dict[str, str]]:
    return [r for r in rows if r["date"] == yymmdd]


@pytest.mark.parametrize(("path", "date"), [
    (JANUARY, "1999-01-04"), (JANUARY, "1999-01-17"), (AUGUST, "1999-08-02")])
def test_day_counts_match_the_published_figures(path: Path, date: str) -> None:
    yymmdd = date[2:].replace("-", "")
    rows = rows_of(list(bank.read_month(str(path))), yymmdd)
    figures = published(date)
    assert len(rows) == int(figures["total_calls"])
    events = bank.calls_to_events(rows)
    types = Counter(e["type"] for e in events)
    hung_up_in_vru = sum(r["outcome"] == "HANG" and r["q_start"] == "0:00:00" for r in rows)
    assert types["contact.abandoned"] + hung_up_in_vru == int(figures["hangs"])
    served = sum(r["outcome"] == "AGENT" for r in rows)
    assert types["contact.answered"] == types["contact.ended"] == served
    assert types["contact.queued"] == served + types["contact.abandoned"]


def test_events_are_valid_sorted_and_follow_the_lifecycle(january: list[dict[str, str]]) -> None:
    events = bank.calls_to_events(rows_of(january, "990104"))
    assert [e["ts"] for e in events] == sorted(e["ts"] for e in events)
    assert len({e["event_id"] for e in events}) == len(events)
    steps: dict[str, list[str]] = defaultdict(list)
    for event in events:
        assert event["channel"] == "voice" and event["ts"].endswith(".000Z")
        steps[event["contact_id"]].append(event["type"].removeprefix("contact."))
    assert set(map(tuple, steps.values())) == {
        ("queued", "answered", "ended"), ("queued", "abandoned")}
    queues = {e["queue"] for e in events if e["type"] == "contact.queued"}
    assert queues <= {"PS", "PE", "IN", "NE", "NW", "TT"}


def row(**fields: str) -> dict[str, str]:
    base = {
        "vru+line": "AA0101", "call_id": "1", "customer_id": "123", "priority": "2", "type": "PS",
        "date": "990104", "vru_entry": "9:00:00", "vru_exit": "9:00:06", "vru_time": "6",
        "q_start": "9:00:06", "q_exit": "9:00:30", "q_time": "24", "outcome": "AGENT",
        "ser_start": "9:00:29", "ser_exit": "9:03:00", "ser_time": "151", "server": "DORIT"}
    return base | fields


def timeline(record: dict[str, str]) -> list[tuple[str, str]]:
    return [(e["type"], e["ts"][11:19]) for _, e in bank.call_to_events(record)]


def test_answer_is_never_before_the_queue() -> None:
    assert timeline(row()) == [("contact.queued", "09:00:06"), ("contact.answered", "09:00:29"),
                               ("contact.ended", "09:03:00")]
    assert timeline(row(ser_start="9:00:01"))[1] == ("contact.answered", "09:00:06")


def test_quirks() -> None:
    # served straight from the VRU: queued and answered at once
    assert timeline(row(q_start="0:00:00", q_exit="0:00:00")) == [
        ("contact.queued", "09:00:29"), ("contact.answered", "09:00:29"),
        ("contact.ended", "09:03:00")]
    # hung up in the VRU, phantom: not contacts
    assert timeline(row(q_start="0:00:00", outcome="HANG")) == []
    assert timeline(row(outcome="PHANTOM")) == []
    # served without service times: answered and ended when leaving the queue
    assert timeline(row(ser_start="0:00:00", ser_exit="0:00:00"))[1:] == [
        ("contact.answered", "09:00:30"), ("contact.ended", "09:00:30")]
    # across midnight: the end is on the next day
    events = bank.call_to_events(row(q_start="23:58:00", q_exit="23:59:00", ser_start="23:59:00",
                                     ser_exit="0:01:08", vru_entry="23:57:50"))
    assert [e["ts"] for _, e in events][-1] == "1999-01-05T00:01:08.000Z"
    queued = events[0][1]
    assert queued["customer_id"] == "123" and queued["queue"] == "PS"
    assert "customer_id" not in bank.call_to_events(row(customer_id="0"))[0][1]
    answered = events[1][1]
    assert answered["agent_id"] == "DORIT"


def test_events_by_day_keeps_ts_order_across_midnight(january: list[dict[str, str]]) -> None:
    events = list(bank.events_by_day(january[:4000] + rows_of(january, "990102")))
    assert [e["ts"] for e in events] == sorted(e["ts"] for e in events)
    assert len(events) == len(bank.calls_to_events(january[:4000] + rows_of(january, "990102")))


def test_main_writes_json_lines_of_one_day(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    assert bank.main([str(JANUARY), "--day", "1999-01-04"]) == 0
    lines = capsysbinary.readouterr().out.splitlines()
    events: list[dict[str, Any]] = [json.loads(line) for line in lines]
    assert events and all(e["contact_id"].startswith("bank-990104-") for e in events)
    assert [e["ts"] for e in events] == sorted(e["ts"] for e in events)
    assert sum(e["type"] == "contact.abandoned" for e in events) == 216
