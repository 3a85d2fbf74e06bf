"""Composition root: wires settings, storage, ERP connectors, PMC's collection API, use
cases, the outbox loops and the entrypoints (the SOAP gateway, PMC's JSON API, the back
office). Every command of :mod:`adapter.cli` gets its parts from :func:`build`; only
``serve``, ``worker`` and ``upgrade-schema`` bring the schema up to date."""
from __future__ import annotations

import atexit
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Callable, Iterable, Literal

from adapter.api.gateway import ApiGateway
from adapter.config import FtpsSettings, Settings, load_settings
from adapter.erp.connector import ErpDirectory
from adapter.pmc.client import PmcDirectory
from adapter.service.billing import BillingService
from adapter.service.charges import Charges
from adapter.service.fetching import ReportFetcher
from adapter.service.forwarding import Forwarder
from adapter.service.observed import ObservedPayments
from adapter.service.outbox import OutboxWorker
from adapter.service.overview import Overview
from adapter.service.publishing import Publisher
from adapter.service.reconciling import Reconciler
from adapter.service.reports import ReportImporter
from adapter.service.uploading import BillingBaseUploads
from adapter.soap import contract
from adapter.soap.dispatch import SpyneDispatcher
from adapter.soap.gateway import Gateway
from adapter.soap.security import Guard, NonceCheck
from adapter.soap.service import spyne_application
from adapter.storage.db import check_ready, make_engine, upgrade_schema
from adapter.storage.nonces import NonceRegistry
from adapter.storage.query_log import QueryLog
from adapter.storage.unit_of_work import Storage


def erp_configured(settings: Settings) -> bool:
    return settings.erp.configured or any(
        section.erp.configured for section in settings.billers.values())


def lease_over(timeouts: list[float]) -> float:
    """Long enough that a delivery in flight always ends (by its timeout) before it expires."""
    return max(30.0, 3 * max(timeouts) + 10)


def forward_lease(settings: Settings) -> float:
    return lease_over([settings.erp_for(biller).timeout
                       for biller in set(settings.billers) | {""}])


def publish_lease(settings: Settings) -> float:
    return lease_over([settings.pmc_api_for(biller).timeout
                       for biller in set(settings.billers) | {""}])


@dataclass
class Components:
    settings: Settings
    storage: Storage
    query_log: QueryLog
    erps: ErpDirectory
    forwarder: Forwarder | None
    billing: BillingService
    pmc_apis: PmcDirectory
    publisher: Publisher | None
    reports: ReportImporter
    fetcher: ReportFetcher
    uploads: BillingBaseUploads
    reconciler: Reconciler
    observed: ObservedPayments
    charges: Charges
    overview: Overview

    @property
    def outboxes(self) -> list[OutboxWorker]:
        """The outbox loops this configuration runs (the ERP's, PMC's API's)."""
        return [worker for worker in (self.forwarder, self.publisher) if worker is not None]

    def ftps_account(self, biller_id: str) -> FtpsSettings | None:
        """The biller's account on the network's FTPS server; None when none is set."""
        options = self.settings.cob_ftp_for(biller_id)
        return options if options.host else None

    def close(self) -> None:
        """Close the database connections (before a fork: the children open their own)."""
        self.storage.engine.dispose()


Schema = Literal["upgrade", "require", "as-is"]


def build(settings: Settings, *, schema: Schema = "require") -> Components:
    """Every part, wired. ``schema``: ``upgrade`` brings the database's schema up to date
    (serve, worker, upgrade-schema); ``require`` refuses one that is not
    (:class:`~adapter.errors.SchemaOutOfDate`; every other command: none changes the
    schema); ``as-is`` does neither (serve's workers: serve upgraded it, and /health says
    when it is not right)."""
    engine = make_engine(settings.database_url)
    if schema == "upgrade":
        upgrade_schema(engine)
    elif schema == "require":
        check_ready(engine)
    storage = Storage(engine)
    query_log = QueryLog(storage.engine)  # each record in its own commit until started
    erps = ErpDirectory(settings)
    pmc_apis = PmcDirectory(settings)
    loop = dict(retry_base=settings.forward_retry_base, retry_max=settings.forward_retry_max,
                concurrency=settings.forward_concurrency, probe=settings.forward_probe)
    forwarder = publisher = None
    if erp_configured(settings):
        forwarder = Forwarder(storage, erps, lease=forward_lease(settings), **loop)
    if pmc_apis.configured:
        publisher = Publisher(storage, pmc_apis, lease=publish_lease(settings), **loop)
    billing = BillingService(storage, erps, concurrency=settings.threads,
                             clock_skew=timedelta(seconds=settings.clock_skew),
                             on_payment_stored=forwarder.wake if forwarder else lambda: None,
                             query_log=query_log, reversal_cutoff=settings.reversal_cutoff,
                             publishes=pmc_apis.publishes,
                             on_invoice_published=publisher.wake if publisher else
                             lambda: None)
    wake = forwarder.wake if forwarder else lambda: None
    return Components(
        settings, storage, query_log, erps, forwarder, billing, pmc_apis, publisher,
        reports=ReportImporter(storage, settings.serves),
        fetcher=ReportFetcher(storage, Path(settings.cob_download_dir), settings.cob_fetch_days),
        uploads=BillingBaseUploads(storage, cutoff=settings.fac_cutoff,
                                   max_files_per_day=settings.fac_max_files_per_day),
        reconciler=Reconciler(storage, erp_configured=erps.configured, on_payment_stored=wake),
        observed=ObservedPayments(storage, erp_configured=erps.configured),
        charges=Charges(storage, settings.charge_window_days),
        overview=Overview(storage, settings.charge_window_days))


class Channels:
    """The service's entrypoints: ``/api/`` to PMC's JSON API, ``/console/`` to the back
    office (when operators are configured), the rest (SOAP, the contract, /health,
    /metrics) to the SOAP gateway."""

    def __init__(self, soap: Gateway, api: ApiGateway, console=None):
        self.soap = soap
        self.api = api
        self.console = console

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "") or "/"
        if path == "/api" or path.startswith("/api/"):
            return self.api(environ, start_response)
        if self.console is not None and (path == "/console" or path.startswith("/console/")):
            return self.console(environ, start_response)
        return self.soap(environ, start_response)


def make_wsgi_app(settings: Settings | None = None, *, forward: bool = False) -> Channels:
    """The service's WSGI app; with ``forward``, this process also forwards payments."""
    settings = settings or load_settings()
    parts = build(settings, schema="as-is")
    parts.query_log.start()  # concurrent debt queries recorded in one commit
    for worker in parts.outboxes if forward else []:
        worker.start(settings.forward_poll)
        # a worker stopping (SIGTERM, gunicorn's graceful exit) lets its deliveries
        # end and releases its claims; killed, it leaves them to their leases
        atexit.register(worker.stop, timeout=settings.graceful_timeout)
    engine = parts.storage.engine
    guard = guard_for(settings, NonceRegistry(engine).first_use)
    soap = Gateway(SpyneDispatcher(spyne_application(parts.billing)), settings,
                   health_check=lambda: check_ready(engine), guard=guard,
                   outbox=lambda: outbox_states(parts.storage),
                   fac_counts=lambda: fac_counts(parts.storage))
    return Channels(soap, ApiGateway(parts.billing, settings, guard),
                    console_for(settings, parts))


def console_for(settings: Settings, parts: Components):
    """The back office, or None when no operator is configured (then /console/ is not
    served at all)."""
    if not settings.operators:
        return None
    from adapter.console.app import ConsoleApp

    return ConsoleApp(settings, parts.storage, parts.billing, parts.observed, parts.reconciler,
                      parts.overview)


def outbox_states(storage: Storage) -> list[tuple[str, str, int, object]]:
    """(destination, state, items, oldest) of both outboxes: the ERP's, PMC's API's."""
    with storage.unit_of_work(read_only=True) as uow:
        return [("erp", *state) for state in uow.forwards.states()] + \
            [("pmc", *state) for state in uow.pmc_deliveries.states()]


def fac_counts(storage: Storage) -> list[tuple[str, int, int]]:
    """(biller, records sent, records rejected) of the billing base files sent."""
    with storage.unit_of_work(read_only=True) as uow:
        return uow.fac_files.counts()


def guard_for(settings: Settings, first_use: NonceCheck | None = None) -> Guard:
    """The guard of ``settings``; ``first_use`` remembers WS-Security nonces."""
    operations = {op.name for op in contract.operations().values()}
    return Guard.from_settings(settings, operations, first_use)
