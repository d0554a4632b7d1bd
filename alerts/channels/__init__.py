"""Notification channels: each the same small shape (``alerts.channels.base.Channel``), each failing on its own."""
