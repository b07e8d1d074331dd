"""Fixtures the monitoring tests share."""

from webhook_support import start_webhook_receiver, webhook_receiver

__all__ = ["start_webhook_receiver", "webhook_receiver"]
