"""Notifications' SQL: messages, crossings, preferences, webhook subscriptions and
deliveries (one module each)."""
