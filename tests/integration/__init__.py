"""Tests that start real servers (Apache Kafka, tansu, Redis, Prometheus, Chromium) or ccmon
processes, or run the tools of the deployment (promtool, docker compose)."""
