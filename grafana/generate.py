"""The Grafana dashboards of ccmon, as code: `python grafana/generate.py` writes
`grafana/dashboards/*.json` (tests/integration/test_grafana.py checks the committed files are
its output).

Plain dictionaries in Grafana's dashboard JSON model (schemaVersion 39, Grafana 10.4 to 12):
no SDK to pin, and the output reads like what Grafana itself exports.

- wallboard: one row per queue, big stat tiles readable across a room;
- queue trends: the windows side by side, waits, hold and handle times, transfers, surveys;
- sre: the monitor's own health, alerting and gateways.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}  # provisioned with this uid
SCHEMA_VERSION = 39
QUEUE = 'queue=~"$queue"'
QUEUE_CHANNEL = 'queue=~"$queue", channel=~"$channel"'
WINDOWED = f'{QUEUE_CHANNEL}, window="$window"'

Panel = dict[str, Any]

# Thresholds: colour steps from the lowest value up (Grafana's model).
GREEN, AMBER, RED, BLUE = "green", "#EAB839", "red", "blue"


def steps(*pairs: tuple[str, float | None]) -> dict[str, Any]:
    return {"mode": "absolute",
            "steps": [{"color": color, "value": value} for color, value in pairs]}


def target(expr: str, legend: str = "", ref: str = "A", instant: bool = False) -> dict:
    return {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": ref,
            "instant": instant, "range": not instant}


def targets(*exprs: tuple[str, str], instant: bool = False) -> list[dict]:
    return [target(expr, legend, chr(ord("A") + i), instant)
            for i, (expr, legend) in enumerate(exprs)]


def stat(title: str, exprs: list[tuple[str, str]], unit: str, thresholds: dict,
         description: str, decimals: int | None = 0, plain: tuple[str, ...] = ()) -> Panel:
    """A big tile: the latest value per series, coloured by threshold; "no data" when absent
    (a ratio with no samples in its window is absent by contract, never 0 %). Series named
    in `plain` are shown in a neutral colour, outside the thresholds."""
    neutral = [{"matcher": {"id": "byName", "options": name},
                "properties": [{"id": "color", "value": {"mode": "fixed",
                                                         "fixedColor": BLUE}}]}
               for name in plain]
    return {
        "type": "stat", "title": title, "description": description, "datasource": DATASOURCE,
        "targets": targets(*exprs, instant=True),
        "fieldConfig": {"defaults": {"unit": unit, "decimals": decimals,
                                     "thresholds": thresholds, "color": {"mode": "thresholds"},
                                     "noValue": "no data"}, "overrides": neutral},
        "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                    "colorMode": "background", "graphMode": "none", "justifyMode": "center",
                    "textMode": "value_and_name", "orientation": "vertical",
                    "text": {"titleSize": 18, "valueSize": 56}},
    }


def timeseries(title: str, exprs: list[tuple[str, str]], unit: str, description: str,
               stacked: bool = False, thresholds: dict | None = None) -> Panel:
    custom: dict[str, Any] = {"drawStyle": "line", "lineWidth": 2, "fillOpacity": 10,
                              "showPoints": "never", "spanNulls": False}
    if stacked:
        custom |= {"stacking": {"mode": "normal", "group": "A"}, "fillOpacity": 60}
    defaults: dict[str, Any] = {"unit": unit, "custom": custom, "noValue": "no data"}
    if thresholds:
        defaults |= {"thresholds": thresholds}
        custom["thresholdsStyle"] = {"mode": "dashed"}
    return {
        "type": "timeseries", "title": title, "description": description,
        "datasource": DATASOURCE, "targets": targets(*exprs),
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "right",
                               "calcs": ["lastNotNull"]},
                    "tooltip": {"mode": "multi", "sort": "desc"}},
    }


def bargauge(title: str, exprs: list[tuple[str, str]], unit: str, thresholds: dict,
             description: str, maximum: float | None = None) -> Panel:
    defaults: dict[str, Any] = {"unit": unit, "thresholds": thresholds, "min": 0,
                                "color": {"mode": "thresholds"}, "noValue": "no data"}
    if maximum is not None:
        defaults["max"] = maximum
    return {
        "type": "bargauge", "title": title, "description": description,
        "datasource": DATASOURCE, "targets": targets(*exprs, instant=True),
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                    "orientation": "horizontal", "displayMode": "gradient",
                    "showUnfilled": True},
    }


def row(title: str, repeat: str | None = None) -> Panel:
    panel: Panel = {"type": "row", "title": title, "collapsed": False, "panels": []}
    if repeat:
        panel["repeat"] = repeat
    return panel


def layout(rows: Iterable[tuple[Panel | None, list[tuple[Panel, int, int]]]]) -> list[Panel]:
    """Place panels left to right in a 24-column grid, a row header before each group;
    each panel comes with its (width, height)."""
    placed: list[Panel] = []
    y = 0
    for header, panels in rows:
        if header is not None:
            placed.append({**header, "gridPos": {"x": 0, "y": y, "w": 24, "h": 1}})
            y += 1
        x = line_height = 0
        for panel, width, height in panels:
            if x + width > 24:
                x, y = 0, y + line_height
                line_height = 0
            placed.append({**panel, "gridPos": {"x": x, "y": y, "w": width, "h": height}})
            x += width
            line_height = max(line_height, height)
        y += line_height
    for number, panel in enumerate(placed, start=1):
        panel["id"] = number
    return placed


def query_variable(name: str, label: str, query: str, *, multi: bool = True,
                   current: str | None = None) -> dict:
    variable: dict[str, Any] = {
        "type": "query", "name": name, "label": label, "datasource": DATASOURCE,
        "query": {"query": query, "refId": f"{name}-values"}, "refresh": 2, "sort": 1,
        "multi": multi, "includeAll": multi, "allValue": ".*" if multi else None,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]} if multi else
        {"selected": True, "text": current, "value": current},
    }
    if not multi:
        del variable["allValue"]
    return variable


QUEUE_VARIABLE = query_variable("queue", "Queue",
                                "label_values(ccmon_queue_waiting_contacts, queue)")
CHANNEL_VARIABLE = query_variable(
    "channel", "Channel", 'label_values(ccmon_queue_waiting_contacts{queue=~"$queue"}, channel)')
WINDOW_VARIABLE = query_variable("window", "Window",
                                 "label_values(ccmon_offered_contacts, window)",
                                 multi=False, current="15m")


def dashboard(uid: str, title: str, description: str, panels: list[Panel],
              variables: list[dict], refresh: str, time_from: str, tags: list[str]) -> dict:
    return {
        "uid": uid, "title": title, "description": description, "tags": ["ccmon", *tags],
        "editable": False, "graphTooltip": 1, "refresh": refresh, "liveNow": False,
        "schemaVersion": SCHEMA_VERSION, "version": 1, "timezone": "browser",
        "time": {"from": time_from, "to": "now"}, "fiscalYearStartMonth": 0,
        "timepicker": {"refresh_intervals": ["5s", "10s", "30s", "1m", "5m"]},
        "templating": {"list": variables}, "annotations": {"list": []},
        "links": [{"type": "dashboards", "tags": ["ccmon"], "asDropdown": False,
                   "includeVars": True, "keepTime": True, "title": "ccmon"}],
        "panels": panels,
    }


# -- the wallboard ---------------------------------------------------------------------------
def wallboard() -> dict:
    by_channel = "{{channel}}"
    tiles = [
        (stat("Waiting now", [(f"sum by (channel) (ccmon_queue_waiting_contacts{{"
                               f"{QUEUE_CHANNEL}}})", by_channel)], "none",
              steps((GREEN, None), (AMBER, 3), (RED, 6)),
              "Contacts waiting in the queue now, per channel."), 4, 6),
        (stat("Oldest wait", [(f"max by (channel) (ccmon_queue_oldest_wait_seconds{{"
                               f"{QUEUE_CHANNEL}}})", by_channel)], "s",
              steps((GREEN, None), (AMBER, 60), (RED, 120)),
              "How long the longest-waiting contact has waited so far; 0 when none waits."),
         4, 6),
        (stat("Service level · $window", [(f"ccmon_service_level_ratio{{{WINDOWED}}}",
                                           by_channel)], "percentunit",
              steps((RED, None), (AMBER, 0.7), (GREEN, 0.8)),
              "Answered within the service-level threshold / (answered + abandoned - short "
              "abandons) over the window. No data: nobody was answered or abandoned in it.",
              decimals=0), 4, 6),
        (stat("Abandon rate · $window", [(f"ccmon_abandon_ratio{{{WINDOWED}}}", by_channel)],
              "percentunit", steps((GREEN, None), (AMBER, 0.05), (RED, 0.1)),
              "(abandoned - short abandons) / (answered + abandoned - short abandons) over "
              "the window. No data: nobody was answered or abandoned in it.", decimals=0),
         4, 6),
        (stat("ASA · $window", [(f"ccmon_answer_wait_seconds_avg{{{WINDOWED}}}", by_channel)],
              "s", steps((GREEN, None), (AMBER, 20), (RED, 40)),
              "Average speed of answer (chat and social: first response time) over the "
              "window. No data: nobody was answered in it."), 4, 6),
        (stat("Agents", [(f'sum(ccmon_agents{{{QUEUE}, state="available"}})', "available"),
                         (f'sum(ccmon_agents{{{QUEUE}, state="busy"}})', "busy")], "none",
              steps((RED, None), (AMBER, 1), (GREEN, 3)),
              "Agents serving this queue whose latest state is available (coloured), and busy.",
              plain=("busy",)), 4, 6),
        (stat("First-contact resolution · $window",
              [(f"ccmon_first_contact_resolution_ratio{{{WINDOWED}}}", by_channel)],
              "percentunit", steps((RED, None), (AMBER, 0.6), (GREEN, 0.75)),
              "Of the customers' cases resolved in the window, those resolved by their first "
              "contact. No data: no case was resolved in it.", decimals=0), 4, 6),
        (stat("Occupancy · $window", [(f'ccmon_occupancy_ratio{{{QUEUE}, window="$window"}}',
                                       "occupancy")], "percentunit",
              steps((GREEN, None), (AMBER, 0.85), (RED, 0.95)),
              "Share of the agents' staffed time (available, busy, acw) spent busy or in acw "
              "over the window. No data: no agent was staffed in it.", decimals=0), 4, 6),
        (stat("Estimated wait · $window", [
            # Absent by contract when N <= A: shown as infinite, which is what it means.
            (f"ccmon_estimated_wait_seconds{{{WINDOWED}}} or "
             f"(ccmon_offered_load_erlangs{{{WINDOWED}}} * 0 + Inf)", by_channel)], "s",
              steps((GREEN, None), (AMBER, 20), (RED, 40)),
              "Erlang C: the mean wait a new contact can expect with the agents staffed now "
              "and the window's arrivals and handle time. Infinite: no more agents than the "
              "offered load, the queue grows. No data: nothing offered or handled in the "
              "window."), 4, 6),
        (stat("Agents required · $window", [
            (f"ccmon_agents_required{{{WINDOWED}}}", by_channel),
            (f'sum(ccmon_agents{{{QUEUE}, state=~"available|busy|acw"}})', "staffed now")],
              "none", steps((BLUE, None)),
              "Erlang C: the fewest agents that would reach the service-level target for the "
              "window's arrivals and handle time, per channel; and the agents staffed now "
              "(available, busy or acw) for comparison.", plain=("staffed now",)), 4, 6),
    ]
    age = stat("Data age", [('time() - ccmon:last_event_timestamp_seconds:max'
                             '{channel=~"$channel"}', by_channel)], "s",
               steps((GREEN, None), (AMBER, 60), (RED, 300)),
               "Seconds since the latest event of each channel reached ccmon. Red: the "
               "figures above are stale (a platform or the monitor has stopped).")
    panels = layout([
        (None, [(age, 24, 4)]),
        (row("$queue", repeat="queue"), tiles),
    ])
    return dashboard("ccmon-wallboard", "ccmon · Wallboard",
                     "Live queues for supervisors: one row per queue.", panels,
                     [QUEUE_VARIABLE, CHANNEL_VARIABLE, WINDOW_VARIABLE], "5s", "now-15m",
                     ["wallboard"])


# -- queue trends ----------------------------------------------------------------------------
def queue_trends() -> dict:
    series = "{{queue}} · {{channel}}"
    per_window = "{{queue}} · {{channel}} · {{window}}"
    percent = steps((RED, None), (AMBER, 0.7), (GREEN, 0.8))
    panels = layout([
        (row("The windows side by side"), [
            (bargauge("Service level by window",
                      [(f"ccmon_service_level_ratio{{{QUEUE_CHANNEL}}}", per_window)],
                      "percentunit", percent,
                      "Every configured window at once: a short window reacts, a long one "
                      "shows the trend.", maximum=1), 8, 10),
            (bargauge("Abandon rate by window",
                      [(f"ccmon_abandon_ratio{{{QUEUE_CHANNEL}}}", per_window)],
                      "percentunit", steps((GREEN, None), (AMBER, 0.05), (RED, 0.1)),
                      "Counted abandons (short ones excluded) over the answered and counted "
                      "abandoned, per window.", maximum=1), 8, 10),
            (bargauge("ASA by window",
                      [(f"ccmon_answer_wait_seconds_avg{{{QUEUE_CHANNEL}}}", per_window)],
                      "s", steps((GREEN, None), (AMBER, 20), (RED, 40)),
                      "Average speed of answer per window."), 8, 10),
        ]),
        (row("Queue · $window window"), [
            (timeseries("Offered, answered, abandoned", [
                (f"sum(ccmon_offered_contacts{{{WINDOWED}}})", "offered"),
                (f"sum(ccmon_answered_contacts{{{WINDOWED}}})", "answered"),
                (f"sum(ccmon_abandoned_contacts{{{WINDOWED}}})", "abandoned"),
                (f"sum(ccmon_short_abandoned_contacts{{{WINDOWED}}})", "short abandons"),
            ], "none", "Contacts over the window, the selected queues and channels together."),
             12, 9),
            (timeseries("Service level", [(f"ccmon_service_level_ratio{{{WINDOWED}}}",
                                           series)], "percentunit",
                        "Service level over the window, per queue and channel.",
                        thresholds=percent), 12, 9),
            (timeseries("Waiting", [(f"ccmon_queue_waiting_contacts{{{QUEUE_CHANNEL}}}",
                                     series)], "none",
                        "Contacts waiting, per queue and channel."), 12, 9),
            (timeseries("Oldest wait", [(f"ccmon_queue_oldest_wait_seconds{{{QUEUE_CHANNEL}}}",
                                         series)], "s",
                        "The longest current wait, per queue and channel."), 12, 9),
        ]),
        (row("Waits, holds and handling · $window window"), [
            (timeseries("Average waits", [
                (f"ccmon_answer_wait_seconds_avg{{{WINDOWED}}}", "answered · " + series),
                (f"ccmon_abandon_wait_seconds_avg{{{WINDOWED}}}", "abandoned · " + series),
            ], "s", "How long the answered waited (ASA) and how long the abandoned waited "
                    "before giving up."), 8, 9),
            (timeseries("Hold and handle times", [
                (f"ccmon_hold_seconds_avg{{{WINDOWED}}}", "hold · " + series),
                (f"ccmon_handle_seconds_avg{{{WINDOWED}}}", "handle · " + series),
            ], "s", "Mean length of the holds that closed, and mean handle time (segment "
                    "plus wrap-up) of the conversations that closed."), 8, 9),
            (timeseries("Transfers out", [(f"ccmon_transferred_contacts{{{WINDOWED}}}",
                                           series)], "none",
                        "Contacts transferred out of the queue, waiting or in conversation."),
             8, 9),
            (timeseries("In conversation and on hold", [
                (f"ccmon_contacts_in_conversation{{{QUEUE_CHANNEL}}}", "talking · " + series),
                (f"ccmon_contacts_on_hold{{{QUEUE_CHANNEL}}}", "on hold · " + series),
            ], "none", "Open conversations of the queue now, and how many of them are on "
                       "hold."), 12, 9),
            (timeseries("Agents by state", [
                (f"sum by (state) (ccmon_agents{{{QUEUE}}})", "{{state}}"),
            ], "none", "Agents serving the selected queues, by their latest state (an agent "
                       "serving two queues counts in both).", stacked=True), 12, 9),
        ]),
        (row("Service level as platforms define it · $window window"), [
            (timeseries("Service level definitions", [
                (f"sum(ccmon_answered_within_threshold_contacts{{{WINDOWED}}}) / "
                 f"(sum(ccmon_answered_contacts{{{WINDOWED}}}) + "
                 f"sum(ccmon_abandoned_contacts{{{WINDOWED}}}) - "
                 f"sum(ccmon_short_abandoned_contacts{{{WINDOWED}}}))", "ccmon (contract)"),
                (f"sum(ccmon_answered_within_threshold_contacts{{{WINDOWED}}}) / "
                 f"sum(ccmon_answered_contacts{{{WINDOWED}}})", "Asterisk SL"),
                (f"(sum(ccmon_answered_within_threshold_contacts{{{WINDOWED}}}) + "
                 f"sum(ccmon_abandoned_within_threshold_contacts{{{WINDOWED}}})) / "
                 f"(sum(ccmon_answered_contacts{{{WINDOWED}}}) + "
                 f"sum(ccmon_abandoned_contacts{{{WINDOWED}}}))", "Asterisk SL2"),
                (f"(sum(ccmon_answered_within_threshold_contacts{{{WINDOWED}}}) + "
                 f"sum(ccmon_abandoned_within_threshold_contacts{{{WINDOWED}}})) / "
                 f"sum(ccmon_offered_contacts{{{WINDOWED}}})", "Amazon Connect"),
                (f"sum(ccmon_answered_within_threshold_contacts{{{WINDOWED}}}) / "
                 f"(sum(ccmon_answered_contacts{{{WINDOWED}}}) + "
                 f"sum(ccmon_abandoned_contacts{{{WINDOWED}}}))", "Genesys Cloud"),
            ], "percentunit", "The same counts read as each platform defines service level "
                              "(README, Reading the metrics), the selected queues and channels "
                              "together.", thresholds=percent), 24, 9),
        ]),
        (row("Distributions · $window window"), [
            (timeseries("Answer wait quantiles", [
                (f"ccmon_answer_wait_seconds{{{WINDOWED}}}", "p{{quantile}} · " + series)],
                "s", "Nearest-rank 50th, 90th and 95th percentiles of the waits of the "
                     "answered."), 8, 9),
            (timeseries("Abandon wait quantiles", [
                (f"ccmon_abandon_wait_seconds{{{WINDOWED}}}", "p{{quantile}} · " + series)],
                "s", "Percentiles of how long the abandoned waited, short abandons "
                     "included."), 8, 9),
            (timeseries("Handle time quantiles", [
                (f"ccmon_handle_seconds{{{WINDOWED}}}", "p{{quantile}} · " + series)],
                "s", "Percentiles of the handle times of the conversation segments that "
                     "closed."), 8, 9),
        ]),
        (row("Staffing · $window window"), [
            (timeseries("Agents required and staffed", [
                (f"ccmon_agents_required{{{WINDOWED}}}", "required · " + series),
                (f'sum by (queue) (ccmon_agents{{{QUEUE}, state=~"available|busy|acw"}})',
                 "staffed · {{queue}}"),
            ], "none", "Erlang C: the fewest agents reaching the service-level target for "
                       "the window's load, against the agents staffed now."), 8, 9),
            (timeseries("Offered load", [
                (f"ccmon_offered_load_erlangs{{{WINDOWED}}}", series)], "none",
                "Erlangs: arrivals per second over the window x mean handle time."), 8, 9),
            (timeseries("Agents' time by state", [
                (f'sum by (state) (ccmon_agent_state_seconds{{{QUEUE}, window="$window"}})',
                 "{{state}}")], "s", "Agent-seconds spent in each state over the window by "
                                     "the agents serving the selected queues.",
                        stacked=True), 8, 9),
        ]),
        (row("Customers' cases · $window window"), [
            (timeseries("Cases", [
                (f"sum(ccmon_opened_cases{{{WINDOWED}}})", "opened"),
                (f"sum(ccmon_reopened_cases{{{WINDOWED}}})", "reopened"),
                (f"sum(ccmon_repeat_contacts{{{WINDOWED}}})", "repeat contacts"),
                (f"sum(ccmon_resolved_cases{{{WINDOWED}}})", "resolved"),
                (f"sum(ccmon_dropped_cases{{{WINDOWED}}})", "dropped"),
            ], "none", "Cases of customers with a customer id over the window: opened (reopened "
                       "among them), contacts that joined an open case, resolved, dropped "
                       "(no contact for the case timeout)."), 8, 9),
            (timeseries("Resolution", [
                (f"ccmon_first_contact_resolution_ratio{{{WINDOWED}}}", "FCR · " + series),
                (f"ccmon_multichannel_case_ratio{{{WINDOWED}}}", "multichannel · " + series),
            ], "percentunit", "Of the cases resolved in the window: resolved by their first "
                              "contact, and those whose contacts used two channels or more."),
             8, 9),
            (timeseries("Open cases", [(f"ccmon_open_cases{{{QUEUE_CHANNEL}}}", series)],
                        "none", "Cases open now, where their latest contact entered."), 8, 9),
        ]),
        (row("Surveys · $window window"), [
            (timeseries("CSAT", [(f"ccmon_csat_ratio{{{WINDOWED}}}", series)], "percentunit",
                        "Share of csat scores of 4 or 5."), 8, 8),
            (timeseries("NPS", [(f"ccmon_nps_score{{{WINDOWED}}}", series)], "none",
                        "100 x (promoters 9-10 - detractors 0-6) / answers."), 8, 8),
            (timeseries("CES", [(f"ccmon_ces_avg{{{WINDOWED}}}", series)], "none",
                        "Mean customer effort score (1-7)."), 8, 8),
        ]),
    ])
    return dashboard("ccmon-queue-trends", "ccmon · Queue trends",
                     "Windows side by side, waits, hold and handle times, transfers, surveys.",
                     panels, [QUEUE_VARIABLE, CHANNEL_VARIABLE, WINDOW_VARIABLE], "30s",
                     "now-6h", ["queues"])


# -- SRE -------------------------------------------------------------------------------------
def sre() -> dict:
    instance = "{{instance}}"
    panels = layout([
        (row("Input"), [
            (timeseries("Events/s by channel and type",
                        [("ccmon:events:rate1m", "{{channel}} {{type}}")], "ops",
                        "Valid events applied per second, all workers (recorded every "
                        "minute from ccmon_events_total).", stacked=True), 12, 9),
            (timeseries("Dead letters/s by reason",
                        [("ccmon:events_invalid:rate1m", "{{reason}}")], "ops",
                        "Events refused and sent to the dead-letter topic, by reason; the "
                        "ccmon-reason header on each says why."), 6, 9),
            (timeseries("Duplicates/s", [(
                "sum(rate(ccmon_events_duplicate_total[$__rate_interval]))", "duplicates")],
                "ops", "Repeated events ignored (at-least-once delivery upstream)."), 6, 9),
        ]),
        (row("Freshness and lag"), [
            (timeseries("Data age by channel", [(
                "time() - ccmon:last_event_timestamp_seconds:max", "{{channel}}")], "s",
                "Seconds since the latest event of each channel.",
                thresholds=steps((GREEN, None), (AMBER, 60), (RED, 300))), 8, 9),
            (timeseries("Consumer lag by worker", [(
                "sum by (instance) (ccmon_consumer_lag_records)", instance)], "none",
                "Records of its assigned partitions a worker has not read yet."), 8, 9),
            (stat("Workers up", [('sum(up{job="ccmon"})', "up"),
                                 ('count(up{job="ccmon"})', "scraped")], "none",
                  steps((RED, None), (GREEN, 1)), "Workers Prometheus can scrape.",
                  plain=("scraped",)), 4, 9),
            (stat("Monitor clock behind", [(
                "time() - max(ccmon_clock_timestamp_seconds)", "behind")], "s",
                steps((GREEN, None), (AMBER, 30), (RED, 120)),
                "Wall time minus the monitor clock: about 0 with clock=wall; with "
                "clock=event, how far a replay is behind now."), 4, 9),
        ]),
        (row("Alerting and gateways"), [
            (timeseries("Alerts firing by severity", [(
                "sum by (severity) (ccmon_alerts_firing)", "{{severity}}")], "none",
                "Supervisor alerts firing now, all workers.", stacked=True), 8, 9),
            (timeseries("Alert transitions/s", [(
                "sum by (status) (rate(ccmon_alert_transitions_total[$__rate_interval]))",
                "{{status}}")], "ops", "Alerts that began firing or resolved."), 8, 9),
            (stat("Undelivered transitions", [(
                "sum(ccmon_alerts_unpublished)", "waiting for Redis")], "none",
                steps((GREEN, None), (RED, 1)),
                "Transitions the workers hold because Redis has not confirmed them."), 8, 9),
            (timeseries("Supervisors connected", [(
                "sum by (instance) (ccmon_gateway_clients)", instance)], "none",
                "Authenticated WebSocket clients per gateway.", stacked=True), 8, 9),
            (timeseries("Alert delivery latency", [
                ("histogram_quantile(0.5, sum by (le) (rate(ccmon_alert_delivery_seconds_bucket"
                 "[$__rate_interval])))", "p50"),
                ("histogram_quantile(0.99, sum by (le) (rate(ccmon_alert_delivery_seconds_bucket"
                 "[$__rate_interval])))", "p99"),
            ], "s", "From a transition's publication in Redis to its message written to a "
                    "supervisor's socket, all gateways."), 8, 9),
            (timeseries("Refused and dropped clients/s", [
                ("sum(rate(ccmon_gateway_auth_failures_total[$__rate_interval]))",
                 "refused (4401)"),
                ("sum(rate(ccmon_gateway_slow_clients_dropped_total[$__rate_interval]))",
                 "too slow (1013)"),
            ], "ops", "Connections refused for a bad token, and clients dropped for "
                      "falling too far behind."), 8, 9),
        ]),
    ])
    return dashboard("ccmon-sre", "ccmon · SRE",
                     "The monitor's own health: input, freshness, lag, alerting, gateways.",
                     panels, [], "30s", "now-3h", ["sre"])


DASHBOARDS = {"wallboard": wallboard, "queue-trends": queue_trends, "sre": sre}


def rendered() -> dict[str, str]:
    return {f"{name}.json": json.dumps(build(), indent=2, sort_keys=True) + "\n"
            for name, build in DASHBOARDS.items()}


def main() -> int:
    OUT.mkdir(exist_ok=True)
    for name, text in rendered().items():
        (OUT / name).write_text(text, encoding="utf-8")
        print(f"wrote {OUT / name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
