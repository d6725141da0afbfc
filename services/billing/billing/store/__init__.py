"""Billing's database side: SQL by area, each module over the tables in ``billing.tables``.

Functions take the session (or unit of work) they run in, so an operation or a handler
decides the transaction; reads for the API build the contract models the routes return.
Missing rows are ``prepaid_common.errors``; no module here knows HTTP.
"""
