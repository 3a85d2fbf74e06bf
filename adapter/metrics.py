"""Prometheus metrics, counted in every gunicorn worker and served summed at ``/metrics``.

prometheus_client's multiprocess mode keeps each process's values in files under
``PROMETHEUS_MULTIPROC_DIR``; ``pmc-adapter serve`` points it at a fresh folder before
anything imports this module (:mod:`adapter.metrics_folder`), and gunicorn's
``child_exit`` forgets a dead worker's live values. Without that
variable (tests in one process, ``pmc-adapter worker``) the values are this process's.

What the outbox holds is not counted but looked up when scraped (one query): how many
items per state, and how old the oldest waiting one is.
"""
from __future__ import annotations

import os
import time
from datetime import datetime
from typing import Callable

from prometheus_client import (CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter,
                               Histogram, generate_latest)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from adapter.metrics_folder import MULTIPROC_ENV
CONTENT_TYPE = CONTENT_TYPE_LATEST

_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REQUESTS = Counter("pmc_requests_total", "SOAP requests answered, by operation and outcome "
                   "(the codigoRespuesta, or 'fault')", ["operation", "outcome"])
FAULTS = Counter("pmc_faults_total", "SOAP faults sent, by fault code", ["code"])
REFUSALS = Counter("pmc_refusals_total", "Requests refused before any operation ran: address, "
                   "authentication, authorization, by fault code", ["code"])
LATENCY = Histogram("pmc_request_seconds", "Time to answer a SOAP request, by operation",
                    ["operation"], buckets=_SECONDS)
ERP_CALLS = Histogram("pmc_erp_call_seconds", "Calls to an ERP, by operation and result "
                      "(ok, unavailable, rejected)", ["operation", "result"], buckets=_SECONDS)
DATABASE_ERRORS = Counter("pmc_database_errors_total",
                          "Database operations that failed (unreachable, timeouts...)")


Outbox = Callable[[], list[tuple[str, str, int, datetime | None]]]


class _OutboxCollector:
    def __init__(self, outbox: Outbox):
        self._outbox = outbox

    def collect(self):
        items = GaugeMetricFamily("pmc_outbox_items", "Items in an outbox, by destination (erp, "
                                  "pmc: PMC's collection API) and state (pending: not tried "
                                  "yet; failing: tried and waiting)",
                                  labels=["destination", "state"])
        oldest = GaugeMetricFamily("pmc_outbox_oldest_seconds", "Age of the oldest item "
                                   "waiting in an outbox, by destination and state",
                                   labels=["destination", "state"])
        now = time.time()
        for destination, state, count, since in self._outbox():
            items.add_metric([destination, state], count)
            if since is not None and state in ("pending", "failing"):
                oldest.add_metric([destination, state], max(0.0, now - since.timestamp()))
        yield items
        yield oldest


FacCounts = Callable[[], list[tuple[str, int, int]]]


class _FacCollector:
    """The billing base records sent and rejected, counted from the files stored (the
    command that sends them, ``upload-fac``, is not this server's process)."""

    def __init__(self, counts: FacCounts):
        self._counts = counts

    def collect(self):
        records = CounterMetricFamily("pmc_fac_records", "Billing base (FAC) records sent to "
                                      "the network, and of them rejected, by biller and "
                                      "outcome", labels=["biller", "outcome"])
        for biller, sent, rejected in self._counts():
            records.add_metric([biller, "sent"], sent)
            records.add_metric([biller, "rejected"], rejected)
        yield records


def exposition(outbox: Outbox, fac_counts: FacCounts | None = None) -> bytes:
    """The metrics of every process of this server, the outbox's state now and the
    billing base records sent."""
    looked_up = CollectorRegistry()
    looked_up.register(_OutboxCollector(outbox))
    if fac_counts is not None:
        looked_up.register(_FacCollector(fac_counts))
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess
        counted = CollectorRegistry()
        multiprocess.MultiProcessCollector(counted)
    else:
        counted = REGISTRY
    return generate_latest(counted) + generate_latest(looked_up)
