"""The consumers: a webhook receiver and a poller fleet."""
