"""Standalone mode: every service in one process, SQLite, the in-process bus, the simulator."""
