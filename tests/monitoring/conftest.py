"""Fixtures the monitoring tests share."""

from monitor_support import served
from webhook_support import start_webhook_receiver, webhook_receiver

__all__ = ["served", "start_webhook_receiver", "webhook_receiver"]
