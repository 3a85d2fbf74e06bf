"""Forwarding stored payments, and their reversals, to the ERP, from the outbox,
until the ERP acknowledges.

A :class:`Forwarder` claims due forwards (a lease, so that several forwarders
on one database -- gunicorn workers, ``pmc-adapter worker`` processes --
never deliver the same payment at the same time), posts each to its biller's
ERP, and records the outcome: delivered; rejected by the ERP (kept, not
retried, for a person to look at); or failed, retried later with exponential
backoff, for as long as it takes. A forwarder killed mid-delivery leaves its
claim to expire; the payment is then delivered again, which the ERP absorbs
(it applies each operation ID once).

A reversal, or a person's application of an observed payment to an invoice (a
"resolution"), is claimed only once its payment's forward is settled
(:meth:`Forwards.claim_due`), so the ERP hears of it after the payment; if the
ERP rejected the payment, it is rejected too, without asking the ERP.
"""
from __future__ import annotations

import logging
import os
import random
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Callable

from adapter.domain.model import utcnow
from adapter.erp.connector import ErpDirectory
from adapter.errors import ErpRejected, ErpUnavailable, StorageUnavailable
from adapter.storage.uow import Conflict, ForwardTask, Storage

log = logging.getLogger(__name__)

class Forwarder:
    """Claims as many due forwards as it delivers at once (``concurrency``), each for
    ``lease`` seconds, and delivers them in parallel: every delivery starts when its
    claim does and ends by the ERP's timeout (a total deadline, see
    :mod:`adapter.erp.deadline`), so the lease -- several timeouts long -- always
    outlives the delivery it covers, and no two forwarders ever send one item at once.

    After an outage the retries have backed off (up to ``retry_max``); every ``probe``
    seconds the oldest failing item is tried whatever its backoff, and the first retry
    that reaches the ERP releases the biller's whole backlog at once.
    """

    def __init__(self, storage: Storage, erps: ErpDirectory, *, lease: float,
                 retry_base: float, retry_max: float, concurrency: int = 4,
                 probe: float = 10.0,
                 clock: Callable[[], datetime] = utcnow, name: str | None = None):
        self._storage = storage
        self._erps = erps
        self._lease = timedelta(seconds=lease)
        self._retry_base = retry_base
        self._retry_max = retry_max
        self._concurrency = concurrency
        self._probe = timedelta(seconds=probe)
        self._probed_at: datetime | None = None
        self._clock = clock
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._deliveries = ThreadPoolExecutor(max_workers=concurrency,
                                              thread_name_prefix="erp-forward")

    # -- one round -------------------------------------------------------------------

    def backoff(self, attempts: int) -> float:
        """Seconds before the next try after ``attempts`` failures (with jitter)."""
        delay = min(self._retry_max, self._retry_base * 2 ** max(0, attempts - 1))
        return delay * random.uniform(0.8, 1.0)

    def run_once(self) -> int:
        """Deliver what is due now, ``concurrency`` at a time; returns how many forwards
        were attempted."""
        now = self._clock()
        probing = self._probed_at is None or now - self._probed_at >= self._probe
        try:
            with self._storage.unit_of_work() as uow:
                tasks = uow.forwards.claim_due(self.name, now, now + self._lease,
                                               self._concurrency)
                if not tasks and probing:  # nothing due: is a backed-off ERP back?
                    tasks = uow.forwards.claim_oldest_failing(self.name, now,
                                                              now + self._lease)
                    self._probed_at = now
                uow.commit()
        except (Conflict, StorageUnavailable) as error:
            log.warning("forwarder %s could not claim: %s", self.name, error)
            return 0
        for done in [self._deliveries.submit(self._deliver, task) for task in tasks]:
            done.result()
        return len(tasks)

    def _recovered(self, biller_id: str) -> None:
        """A retry reached the ERP: what waits for its backoff may go now."""
        try:
            with self._storage.unit_of_work() as uow:
                released = uow.forwards.release_backlog(biller_id, self._clock())
                uow.commit()
        except (Conflict, StorageUnavailable) as error:
            log.warning("could not release the backlog of biller %s: %s", biller_id, error)
            return
        if released:
            log.info("the ERP of biller %s answers again: %d waiting forwards released",
                     biller_id, released)
            self.wake()

    def _deliver(self, task: ForwardTask) -> None:
        notice = task.notice
        what = ("reversal of payment" if task.reversal is not None else
                "application of payment" if task.apply_to_invoice is not None else "payment")
        connector = self._erps.for_biller(notice.biller_id)
        try:
            if task.payment_rejected:
                raise ErpRejected("its payment was rejected by the ERP: nothing to reverse")
            if connector is None:
                raise ErpUnavailable(f"no ERP is configured for biller {notice.biller_id}")
            if task.reversal is not None:
                ack = connector.reverse_payment(task.reversal, task.reversal_id)
            elif task.apply_to_invoice is not None:
                ack = connector.apply_payment(notice, task.apply_to_invoice, task.receipt_id)
            else:
                ack = connector.post_payment(notice, task.receipt_id)
        except ErpRejected as error:
            log.error("ERP rejected %s %s: %s", what, notice.operation_id, error)
            reason = str(error)
            self._record(task, lambda uow: uow.forwards.rejected(task, self.name, reason))
        except Exception as error:  # ErpUnavailable, or a connector bug: try again later
            attempts = task.attempts + 1
            delay = self.backoff(attempts)
            log.warning("%s %s not forwarded (attempt %d), retry in %.0f s: %s",
                        what, notice.operation_id, attempts, delay, error)
            at, reason = self._clock() + timedelta(seconds=delay), str(error)
            self._record(task, lambda uow: uow.forwards.retry_later(task, self.name,
                                                                   reason, at))
        else:
            log.info("%s %s forwarded to the ERP (%s%s)", what, notice.operation_id,
                     ack.reference, ", already there" if ack.duplicate else "")
            self._record(task, lambda uow: uow.forwards.delivered(task, self.name,
                                                                 ack.reference))
            if task.attempts:
                self._recovered(notice.biller_id)

    def _record(self, task: ForwardTask, change) -> None:
        try:
            with self._storage.unit_of_work() as uow:
                if not change(uow):
                    log.warning("forward %d was no longer claimed by %s (lease expired)",
                                task.forward_pk, self.name)
                uow.commit()
        except (Conflict, StorageUnavailable) as error:
            # the claim expires and the payment is delivered again: the ERP dedups
            log.error("could not record forward %d: %s", task.forward_pk, error)

    # -- running -------------------------------------------------------------------------

    def wake(self) -> None:
        """Look at the outbox now (a payment was just stored)."""
        self._wake.set()

    def run_forever(self, poll: float) -> None:
        log.info("forwarder %s started (poll every %.1f s)", self.name, poll)
        while not self._stop.is_set():
            self._wake.clear()
            try:
                busy = self.run_once() == self._concurrency
            except Exception:  # keep forwarding whatever happened in one round
                log.exception("forwarder round failed")
                busy = False
            if not busy:
                self._wake.wait(poll)
        log.info("forwarder %s stopped", self.name)

    def start(self, poll: float) -> None:
        self._thread = threading.Thread(target=self.run_forever, args=(poll,),
                                        name="erp-forwarder", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the forwarding loop to end after its round (safe in a signal handler)."""
        self._stop.set()
        self._wake.set()

    def stop(self, timeout: float = 10) -> None:
        """Stop forwarding: no new claims; the deliveries in flight end (each by its
        ERP timeout, within ``timeout``), then the claims this forwarder still holds are
        released, so that another forwarder delivers them at once instead of waiting
        for the leases to run out."""
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout)
        self._deliveries.shutdown(wait=True)
        self.release_claims()

    def release_claims(self) -> None:
        try:
            with self._storage.unit_of_work() as uow:
                released = uow.forwards.release_claims(self.name)
                uow.commit()
        except (Conflict, StorageUnavailable) as error:  # the leases will run out
            log.warning("forwarder %s could not release its claims: %s", self.name, error)
            return
        if released:
            log.info("forwarder %s released %d claim(s)", self.name, released)
