"""Webhooks that cannot slow monitoring: sending what the alert outbox holds.

:class:`~setpoint.monitoring.alerts.AlertStore` writes one outbox row
(``alert_deliveries``) per notification in the same transaction as the alert change;
a :class:`Notifier` claims them through the :class:`Outbox` and sends them from a
background thread pool with short timeouts. A failed attempt is recorded (attempts,
last error) and retried with exponential backoff by later :meth:`Notifier.deliver_due`
calls. Nothing waits for a receiver: a receiver that is down or hangs costs a worker
thread, never the caller.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Collection, Sequence
from concurrent import futures
from datetime import datetime, timedelta
from threading import Lock
from typing import Any

import sqlalchemy as sa

from setpoint.errors import UsageError
from setpoint.monitoring.alerts import (
    DEFAULT_COOLDOWN,
    Alert,
    AlertStore,
    Delivery,
    alert_from_row,
    delivery_from_row,
    utc,
)
from setpoint.monitoring.settings import WebhookConfig
from setpoint.store.db import Database
from setpoint.store.schema import alert_deliveries, alerts

log = logging.getLogger(__name__)


def hook_body(hook: WebhookConfig, alert: Alert) -> bytes:
    """What ``hook`` is sent for ``alert``, in the hook's format."""
    document = {"text": alert.summary()} if hook.format == "slack" else alert.to_dict()
    return json.dumps(document, default=str).encode()


class Outbox:
    """The sending side of the outbox (``alert_deliveries``): due deliveries are
    claimed for one attempt each, and each attempt's outcome is recorded."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def claim_due(
        self,
        urls: Sequence[str],
        *,
        now: datetime | None = None,
        lease: timedelta,
        limit: int,
        skip: Collection[int] = (),
    ) -> list[tuple[Delivery, Alert]]:
        """Take the deliveries to ``urls`` whose next attempt is due, for one attempt each.

        Claiming counts the attempt and moves the next attempt ``lease`` ahead, so
        another process calling this meanwhile does not send them too, and a process
        that dies mid-attempt leaves them to be retried when the lease runs out. The
        lease is on the caller's clock, so a caller jumping ahead also skips the ids
        it has in flight (``skip``).
        """
        at = utc(now)
        d = alert_deliveries
        query = (
            sa.select(d.c.id)
            .where(
                d.c.delivered_at.is_(None),
                d.c.next_attempt_at <= at,
                d.c.url.in_(list(urls)),
                d.c.id.not_in(list(skip)),
            )
            .order_by(d.c.next_attempt_at, d.c.id)
            .limit(limit)
        )
        if not self._db.is_sqlite:
            query = query.with_for_update(skip_locked=True)
        with self._db.write() as conn:
            ids = list(conn.execute(query).scalars())
            if not ids:
                return []
            conn.execute(
                d.update()
                .where(d.c.id.in_(ids))
                .values(attempts=d.c.attempts + 1, next_attempt_at=at + lease)
            )
            deliveries = [
                delivery_from_row(row)
                for row in conn.execute(sa.select(d).where(d.c.id.in_(ids)).order_by(d.c.id))
            ]
            alert_ids = {delivery.alert_id for delivery in deliveries}
            found = {
                row.id: alert_from_row(row)
                for row in conn.execute(sa.select(alerts).where(alerts.c.id.in_(alert_ids)))
            }
            return [(delivery, found[delivery.alert_id]) for delivery in deliveries]

    def record_attempt(
        self,
        delivery: Delivery,
        *,
        error: str | None,
        retry_at: datetime | None,
        now: datetime | None = None,
    ) -> None:
        """The outcome of the attempt ``delivery`` was claimed for (``error`` None: sent).

        A failure is recorded only if no later claim took the delivery over (its lease
        ran out), so an old attempt cannot overwrite a newer one's schedule.
        """
        d = alert_deliveries
        with self._db.write() as conn:
            if error is None:
                conn.execute(
                    d.update()
                    .where(d.c.id == delivery.id, d.c.delivered_at.is_(None))
                    .values(delivered_at=utc(now), next_attempt_at=None)
                )
            else:
                conn.execute(
                    d.update()
                    .where(
                        d.c.id == delivery.id,
                        d.c.attempts == delivery.attempts,
                        d.c.delivered_at.is_(None),
                    )
                    .values(last_error=error, next_attempt_at=retry_at)
                )


class Notifier:
    """Raises alerts through an :class:`AlertStore` and sends them to webhooks.

    Deliveries run in a pool of background threads; :meth:`flush` waits for them (a
    CLI command calls it before exiting) and :meth:`close` stops the pool, leaving
    unsent deliveries in the outbox for the next run.
    """

    def __init__(
        self,
        store: AlertStore,
        webhooks: Sequence[WebhookConfig],
        *,
        workers: int = 4,
        backoff: timedelta = timedelta(seconds=30),
        max_backoff: timedelta = timedelta(hours=1),
        max_attempts: int = 10,
    ) -> None:
        self.store = store
        self._outbox = Outbox(store.db)
        self.webhooks = {hook.url: hook for hook in webhooks}
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._max_attempts = max_attempts
        # A claimed delivery not finished within the lease (the process died) is retried.
        longest = max((hook.timeout for hook in webhooks), default=5.0)
        self._lease = timedelta(seconds=60 + 2 * longest)
        self._pool = futures.ThreadPoolExecutor(workers, thread_name_prefix="setpoint-webhook")
        self._in_flight: dict[futures.Future[None], int] = {}  # -> delivery id
        self._lock = Lock()
        self._closed = False

    def raise_alert(
        self,
        endpoint: str,
        key: str,
        severity: str,
        message: str,
        evidence: Any = None,
        *,
        now: datetime | None = None,
        seen: datetime | None = None,
        cooldown: timedelta = DEFAULT_COOLDOWN,
    ) -> Alert | None:
        """:meth:`AlertStore.raise_alert`, then start sending what is due. Never waits."""
        at = utc(now)
        alert = self.store.raise_alert(
            endpoint,
            key,
            severity,
            message,
            evidence,
            now=at,
            seen=seen,
            cooldown=cooldown,
            notify=list(self.webhooks),
        )
        if alert is not None:
            self.deliver_due(now=at)
        return alert

    def deliver_due(self, *, now: datetime | None = None, limit: int = 100) -> int:
        """Start every delivery whose next attempt is due; the number started."""
        if self._closed:
            raise UsageError("this notifier is closed; create a new one to send alerts")
        if not self.webhooks:
            return 0
        at = utc(now)
        with self._lock:
            busy = set(self._in_flight.values())
        claimed = self._outbox.claim_due(
            list(self.webhooks), now=at, lease=self._lease, limit=limit, skip=busy
        )
        for delivery, alert in claimed:
            future = self._pool.submit(self._attempt, delivery, alert, at)
            with self._lock:
                self._in_flight[future] = delivery.id
            future.add_done_callback(self._done)
        return len(claimed)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds for the deliveries in flight; True if all ended."""
        with self._lock:
            pending = set(self._in_flight)
        _done, not_done = futures.wait(pending, timeout=timeout)
        return not not_done

    def close(self) -> None:
        """Stop taking work; deliveries not started stay in the outbox for a later run."""
        self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> Notifier:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _done(self, future: futures.Future[None]) -> None:
        with self._lock:
            self._in_flight.pop(future, None)

    def _attempt(self, delivery: Delivery, alert: Alert, at: datetime) -> None:
        hook = self.webhooks[delivery.url]
        try:
            _post(hook, hook_body(hook, alert))
        except Exception as exc:  # whatever the receiver did, it is this attempt's error
            error = _describe(exc)
            retry_at = None
            if delivery.attempts < self._max_attempts:
                delay = self._backoff * 2 ** (delivery.attempts - 1)
                retry_at = at + min(delay, self._max_backoff)
            log.warning(
                "alert %s: webhook %s failed (attempt %s): %s%s",
                alert.id,
                hook.url,
                delivery.attempts,
                error,
                "" if retry_at else "; giving up",
            )
            self._record(delivery, error=error, retry_at=retry_at, now=at)
        else:
            self._record(delivery, error=None, retry_at=None, now=at)

    def _record(self, delivery: Delivery, **outcome: Any) -> None:
        try:
            self._outbox.record_attempt(delivery, **outcome)
        except Exception:  # the store is down: the lease runs out and it is retried
            log.exception("cannot record the outcome of webhook delivery %s", delivery.id)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # urllib turns a redirected POST into a GET without the body; call it a failure.
    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def _post(hook: WebhookConfig, body: bytes) -> None:
    request = urllib.request.Request(
        hook.url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "setpoint-alerts"},
    )
    with _opener.open(request, timeout=hook.timeout) as response:
        response.read()


def _describe(exc: Exception) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        detail = exc.read(200).decode(errors="replace").strip()
        exc.close()
        return f"HTTP {exc.code} {exc.reason}" + (f": {detail}" if detail else "")
    if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, Exception):
        return f"{type(exc.reason).__name__}: {exc.reason}"
    return f"{type(exc).__name__}: {exc}"
