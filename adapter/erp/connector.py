"""What the adapter needs from a biller's ERP, whatever the ERP is.

A biller with another ERP writes one subclass of :class:`ErpConnector` (two
methods, and a third for reversals, speaking our domain types) and names it in the config file::

    [billers.1234]
    erp_connector = "mycompany.erp:SapConnector"
    erp_wsdl = "https://sap.internal/cobranzas?wsdl"
    erp_options = { client = "300" }    # the connector's own settings, if it has any

The class is built once per distinct ERP configuration per process with that
biller's :class:`adapter.config.ErpSettings` (its ``options`` are ``erp_options``)
and nothing else of the configuration.
Its methods raise :class:`adapter.errors.ErpUnavailable` for anything worth
retrying (timeouts, connection errors, faults) and
:class:`adapter.errors.ErpRejected` for a definitive "no".
"""
from __future__ import annotations

import abc
import importlib
import threading
from dataclasses import dataclass

from adapter.config import ErpSettings, Settings
from adapter.domain.model import Invoice, PaymentNotice, ReversalNotice
from adapter.errors import ConfigurationError, ErpRejected


@dataclass(frozen=True)
class ErpLookup:
    """What the ERP knows of a client: whether it exists, and its invoices."""

    customer_known: bool
    invoices: tuple[Invoice, ...] = ()


@dataclass(frozen=True)
class ErpAck:
    """The ERP took the payment (now, or already before: ``duplicate``)."""

    reference: str | None
    duplicate: bool = False


class ErpConnector(abc.ABC):
    def __init__(self, options: ErpSettings):
        self.options = options

    @abc.abstractmethod
    def customer_invoices(self, biller_id: str, customer_id: str) -> ErpLookup:
        """The client's invoices in the ERP (origin ERP), paid ones marked paid."""

    @abc.abstractmethod
    def post_payment(self, notice: PaymentNotice, receipt_id: str) -> ErpAck:
        """Post a payment; must be safe to repeat (the ERP dedups on the operation ID)."""

    def apply_payment(self, notice: PaymentNotice, invoice_id: str, receipt_id: str) -> ErpAck:
        """Apply a payment posted earlier (unapplied: it was observed) to ``invoice_id``,
        as a person decided; must be safe to repeat. Refused by default: listed as
        rejected."""
        raise ErpRejected(f"{type(self).__name__} cannot apply a posted payment to an invoice")

    def reverse_payment(self, reversal: ReversalNotice, reversal_id: str) -> ErpAck:
        """Reverse a payment posted earlier; must be safe to repeat. A connector that
        cannot reverse refuses, definitively: the reversal is listed as rejected."""
        raise ErpRejected(f"{type(self).__name__} cannot reverse payments")


def _load_class(dotted: str) -> type[ErpConnector]:
    module_name, _, class_name = dotted.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError) as error:
        raise ConfigurationError(f"ERP connector {dotted!r} cannot be loaded: {error}") from None
    if not (isinstance(cls, type) and issubclass(cls, ErpConnector)):
        raise ConfigurationError(f"ERP connector {dotted!r} is not an ErpConnector subclass")
    return cls


class ErpDirectory:
    """The ERP connector of each biller: one instance per distinct ERP configuration
    per process, so that billers sharing the global ERP share one client."""

    def __init__(self, settings: Settings):
        self._settings = settings
        self._connectors: dict[str, ErpConnector | None] = {}
        # billers configured alike share one connector (one zeep client per ERP)
        self._shared: dict[ErpSettings, ErpConnector] = {}
        self._lock = threading.Lock()

    def for_biller(self, biller_id: str) -> ErpConnector | None:
        with self._lock:
            if biller_id not in self._connectors:
                self._connectors[biller_id] = self._build(biller_id)
            return self._connectors[biller_id]

    def configured(self, biller_id: str) -> bool:
        """Whether the biller has an ERP (its own, or the global one)."""
        return self.for_biller(biller_id) is not None

    def _build(self, biller_id: str) -> ErpConnector | None:
        erp = self._settings.erp_for(biller_id)
        if not erp.configured:
            return None
        if erp not in self._shared:
            self._shared[erp] = _load_class(erp.connector)(erp)
        return self._shared[erp]

    def check(self) -> None:
        """Build every configured connector now, so that a bad config stops the start
        (the global one too, which serves billers nobody listed)."""
        self._build("")
        for biller_id in self._settings.known_billers:
            self.for_biller(biller_id)
