"""What the API and the loops call: send what is due, manage preferences and webhook
subscriptions, list what was sent."""
