"""Every topic the worker's agents subscribe takes the batch path (consumers/fastpath.py):
Faust's stream path loses the events it has queued when its recovery resumes the flow
(docs/design.md, "Faust's stream path loses events"). Builds the Faust app; connects to
nothing."""

from __future__ import annotations

from ccmon.consumers.worker import Worker
from ccmon.settings import load


def test_every_subscribed_topic_has_a_batch_handler():
    worker = Worker(load(environ={"CCMON_BROKERS": "127.0.0.1:1"}), 4)
    subscribed = {topic for agent in worker.app.agents.values()
                  for topic in agent.channel.topics}
    assert subscribed == set(worker.app.batch_handlers)
    assert {worker.facts_topic, worker.journeys_topic} <= subscribed
