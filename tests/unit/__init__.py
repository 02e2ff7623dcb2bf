"""Tests that start no server and no process: the pure engine, the pure modules of alerts/,
the adapters' parsers, the session, the rules, the house's architecture."""
