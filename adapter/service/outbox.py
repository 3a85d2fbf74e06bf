"""Delivering an outbox until its receiver acknowledges: the loop every outbox runs.

An :class:`OutboxWorker` claims due items (a lease, so that several workers on one
database -- gunicorn workers, ``pmc-adapter worker`` processes -- never deliver the
same item at the same time), hands each to :meth:`OutboxWorker.send`, and records
the outcome: delivered; rejected by the receiver (kept, not retried, for a person to
look at); or failed, retried later with exponential backoff, for as long as it takes.
A worker killed mid-delivery leaves its claim to expire; the item is then delivered
again, which the receiver absorbs (at least once, and idempotent receivers).

Subclasses say which outbox (:meth:`queue`), how to deliver one item, and how to
name it in the log: :class:`adapter.service.forwarding.Forwarder` (payments to the
ERP), :class:`adapter.service.publishing.Publisher` (invoices to PMC's collection API).
"""
from __future__ import annotations

import logging
import os
import random
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any, Callable, ClassVar

from adapter.domain.model import utcnow
from adapter.errors import Conflict, StorageUnavailable
from adapter.storage.unit_of_work import Storage

log = logging.getLogger(__name__)


class Delivered:
    """What the receiver acknowledged: its reference, and whether it had the item
    already."""

    def __init__(self, reference: str | None, duplicate: bool = False):
        self.reference = reference
        self.duplicate = duplicate


class OutboxWorker:
    """Claims as many due items as it delivers at once (``concurrency``), each for
    ``lease`` seconds, and delivers them in parallel: every delivery ends by its
    receiver's timeout (a total deadline, see :mod:`adapter.erp.deadline`), so the
    lease -- several timeouts long -- always outlives the delivery it covers, and no
    two workers ever send one item at once.

    After an outage the retries have backed off (up to ``retry_max``); every ``probe``
    seconds the oldest failing item is tried whatever its backoff, and the first retry
    that reaches the receiver releases the biller's whole backlog at once.
    """

    #: what the log calls the receiver, and the threads' names
    receiver: ClassVar[str]
    #: the exception that means the receiver refused the item for good
    rejection: ClassVar[type[Exception]]

    def __init__(self, storage: Storage, *, lease: float, retry_base: float,
                 retry_max: float, concurrency: int = 4, probe: float = 10.0,
                 clock: Callable[[], datetime] = utcnow, name: str | None = None):
        self._storage = storage
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
                                              thread_name_prefix=f"{self._thread_name}-delivery")

    @property
    def _thread_name(self) -> str:
        return self.receiver.lower().replace(" ", "-")

    # -- what subclasses say -----------------------------------------------------------

    def queue(self, uow) -> Any:
        """The outbox repository (an :class:`adapter.storage.outbox.OutboxQueue`)."""
        raise NotImplementedError

    def send(self, task) -> Delivered:
        """Deliver one item; raises ``rejection`` for a refusal, anything else to retry."""
        raise NotImplementedError

    def describe(self, task) -> str:
        """The item, for the log."""
        raise NotImplementedError

    # -- one round -------------------------------------------------------------------

    def backoff(self, attempts: int) -> float:
        """Seconds before the next try after ``attempts`` failures (with jitter)."""
        delay = min(self._retry_max, self._retry_base * 2 ** max(0, attempts - 1))
        return delay * random.uniform(0.8, 1.0)

    def run_once(self) -> int:
        """Deliver what is due now, ``concurrency`` at a time; returns how many items
        were attempted."""
        now = self._clock()
        probing = self._probed_at is None or now - self._probed_at >= self._probe
        try:
            with self._storage.unit_of_work() as uow:
                queue = self.queue(uow)
                tasks = queue.claim_due(self.name, now, now + self._lease, self._concurrency)
                if not tasks and probing:  # nothing due: is a backed-off receiver back?
                    tasks = queue.claim_oldest_failing(self.name, now, now + self._lease)
                    self._probed_at = now
                uow.commit()
        except (Conflict, StorageUnavailable) as error:
            log.warning("%s %s could not claim: %s", self.receiver, self.name, error)
            return 0
        for done in [self._deliveries.submit(self._deliver, task) for task in tasks]:
            done.result()
        return len(tasks)

    def _recovered(self, biller_id: str) -> None:
        """A retry reached the receiver: what waits for its backoff may go now."""
        try:
            with self._storage.unit_of_work() as uow:
                released = self.queue(uow).release_backlog(biller_id, self._clock())
                uow.commit()
        except (Conflict, StorageUnavailable) as error:
            log.warning("could not release the %s backlog of biller %s: %s", self.receiver,
                        biller_id, error)
            return
        if released:
            log.info("the %s of biller %s answers again: %d waiting items released",
                     self.receiver, biller_id, released)
            self.wake()

    def _deliver(self, task) -> None:
        what = self.describe(task)
        try:
            ack = self.send(task)
        except self.rejection as error:
            log.error("%s rejected %s: %s", self.receiver, what, error)
            reason = str(error)
            self._record(task, lambda uow: self.queue(uow).rejected(task, self.name, reason))
        except Exception as error:  # unavailable, or a client bug: try again later
            attempts = task.attempts + 1
            delay = self.backoff(attempts)
            log.warning("%s not delivered to the %s (attempt %d), retry in %.0f s: %s",
                        what, self.receiver, attempts, delay, error)
            at, reason = self._clock() + timedelta(seconds=delay), str(error)
            self._record(task, lambda uow: self.queue(uow).retry_later(task, self.name,
                                                                      reason, at))
        else:
            log.info("%s delivered to the %s (%s%s)", what, self.receiver, ack.reference,
                     ", already there" if ack.duplicate else "")
            self._record(task, lambda uow: self.queue(uow).delivered(task, self.name,
                                                                    ack.reference))
            if task.attempts:
                self._recovered(task.biller_id)

    def _record(self, task, change) -> None:
        try:
            with self._storage.unit_of_work() as uow:
                if not change(uow):
                    log.warning("%s item %d was no longer claimed by %s (lease expired)",
                                self.receiver, task.pk, self.name)
                uow.commit()
        except (Conflict, StorageUnavailable) as error:
            # the claim expires and the item is delivered again: the receiver dedups
            log.error("could not record %s item %d: %s", self.receiver, task.pk, error)

    # -- running -------------------------------------------------------------------------

    def wake(self) -> None:
        """Look at the outbox now (an item was just written)."""
        self._wake.set()

    def run_forever(self, poll: float) -> None:
        log.info("%s outbox worker %s started (poll every %.1f s)", self.receiver, self.name,
                 poll)
        while not self._stop.is_set():
            self._wake.clear()
            try:
                busy = self.run_once() == self._concurrency
            except Exception:  # keep delivering whatever happened in one round
                log.exception("%s outbox round failed", self.receiver)
                busy = False
            if not busy:
                self._wake.wait(poll)
        log.info("%s outbox worker %s stopped", self.receiver, self.name)

    def start(self, poll: float) -> None:
        self._thread = threading.Thread(target=self.run_forever, args=(poll,),
                                        name=f"{self._thread_name}-outbox", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the loop to end after its round (safe in a signal handler)."""
        self._stop.set()
        self._wake.set()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def stop(self, timeout: float = 10) -> None:
        """Stop delivering: no new claims; the deliveries in flight end (each by its
        receiver's timeout, within ``timeout``), then the claims this worker still
        holds are released, so that another worker delivers them at once instead of
        waiting for the leases to run out."""
        self.request_stop()
        self.join(timeout)
        self._deliveries.shutdown(wait=True)
        self.release_claims()

    def release_claims(self) -> None:
        try:
            with self._storage.unit_of_work() as uow:
                released = self.queue(uow).release_claims(self.name)
                uow.commit()
        except (Conflict, StorageUnavailable) as error:  # the leases will run out
            log.warning("%s %s could not release its claims: %s", self.receiver, self.name,
                        error)
            return
        if released:
            log.info("%s %s released %d claim(s)", self.receiver, self.name, released)
