"""Composition root: wires settings, storage, ERP connectors, use cases and the two
entrypoints (the SOAP gateway, PMC's JSON API)."""
from __future__ import annotations

import atexit
from dataclasses import dataclass
from datetime import timedelta
from typing import Callable, Iterable

from adapter.api.gateway import ApiGateway
from adapter.config import Settings, load_settings
from adapter.erp.connector import ErpDirectory
from adapter.service.billing import BillingService
from adapter.service.forwarding import Forwarder
from adapter.soap import contract
from adapter.soap.dispatch import SpyneDispatcher
from adapter.soap.gateway import Gateway
from adapter.soap.security import Guard, NonceCheck
from adapter.soap.service import spyne_application
from adapter.storage.db import check_ready, make_engine
from adapter.storage.nonces import NonceRegistry
from adapter.storage.query_log import QueryLog
from adapter.storage.uow import Storage


def erp_configured(settings: Settings) -> bool:
    return settings.erp.configured or any(
        section.erp.configured for section in settings.billers.values())


def forward_lease(settings: Settings) -> float:
    """Long enough that a delivery in flight always ends (by its timeout) before it expires."""
    timeouts = [settings.erp_for(biller).timeout for biller in set(settings.billers) | {""}]
    return max(30.0, 3 * max(timeouts) + 10)


@dataclass
class Components:
    storage: Storage
    query_log: QueryLog
    erps: ErpDirectory
    forwarder: Forwarder | None
    billing: BillingService


def build(settings: Settings) -> Components:
    storage = Storage(make_engine(settings.database_url))
    query_log = QueryLog(storage.engine)  # each record in its own commit until started
    erps = ErpDirectory(settings)
    forwarder = None
    if erp_configured(settings):
        forwarder = Forwarder(storage, erps, lease=forward_lease(settings),
                              retry_base=settings.forward_retry_base,
                              retry_max=settings.forward_retry_max,
                              concurrency=settings.forward_concurrency,
                              probe=settings.forward_probe)
    billing = BillingService(storage, erps, concurrency=settings.threads,
                             clock_skew=timedelta(seconds=settings.clock_skew),
                             on_payment_stored=forwarder.wake if forwarder else lambda: None,
                             query_log=query_log, reversal_cutoff=settings.reversal_cutoff)
    return Components(storage, query_log, erps, forwarder, billing)


class Channels:
    """The service's two entrypoints: ``/api/`` to PMC's JSON API, the rest (SOAP, the
    contract, /health, /metrics) to the SOAP gateway."""

    def __init__(self, soap: Gateway, api: ApiGateway):
        self.soap = soap
        self.api = api

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "") or "/"
        if path == "/api" or path.startswith("/api/"):
            return self.api(environ, start_response)
        return self.soap(environ, start_response)


def make_wsgi_app(settings: Settings | None = None, *, forward: bool = False) -> Channels:
    """The service's WSGI app; with ``forward``, this process also forwards payments."""
    settings = settings or load_settings()
    parts = build(settings)
    parts.query_log.start()  # concurrent debt queries recorded in one commit
    if forward and parts.forwarder is not None:
        parts.forwarder.start(settings.forward_poll)
        # a worker stopping (SIGTERM, gunicorn's graceful exit) lets its deliveries
        # end and releases its claims; killed, it leaves them to their leases
        atexit.register(parts.forwarder.stop, timeout=settings.graceful_timeout)
    engine = parts.storage.engine
    guard = guard_for(settings, NonceRegistry(engine).first_use)
    soap = Gateway(SpyneDispatcher(spyne_application(parts.billing)), settings,
                   health_check=lambda: check_ready(engine), guard=guard,
                   outbox=lambda: outbox_states(parts.storage))
    return Channels(soap, ApiGateway(parts.billing, settings, guard))


def outbox_states(storage: Storage) -> list:
    with storage.unit_of_work(read_only=True) as uow:
        return uow.forwards.states()


def guard_for(settings: Settings, first_use: NonceCheck | None = None) -> Guard:
    """The guard of ``settings``; ``first_use`` remembers WS-Security nonces."""
    operations = {op.name for op in contract.operations().values()}
    return Guard.from_settings(settings, operations, first_use)
