"""Billing: rates readings, keeps the double-entry ledger, decides when supply is cut."""
