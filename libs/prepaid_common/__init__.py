"""Plumbing shared by every service: contracts, bus, database, settings, metrics, logs.

No business rule lives here.
"""
