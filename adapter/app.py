"""Composition root: wires settings, storage, use cases and the SOAP gateway."""
from __future__ import annotations

from spyne.server.wsgi import WsgiApplication

from adapter.config import Settings, load_settings
from adapter.service.billing import BillingService
from adapter.soap.gateway import Gateway
from adapter.soap.service import spyne_application
from adapter.storage.db import make_engine, ping
from adapter.storage.uow import Storage


def make_wsgi_app(settings: Settings | None = None) -> Gateway:
    settings = settings or load_settings()
    engine = make_engine(settings.database_url)
    storage = Storage(engine)
    spyne_app = spyne_application(BillingService(storage))
    return Gateway(WsgiApplication(spyne_app), settings, health_check=lambda: ping(engine))
