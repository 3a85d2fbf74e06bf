"""The network's words for the code's, in one place.

The code speaks English (``operation_id``, ``biller_id``); PMC's contract, its files and
the people who close the day speak the network's Spanish (``idOperacion``, ``empresa``).
The SOAP messages are translated by their codec (:mod:`adapter.soap.codec`, wire models
to the domain's); what people read -- the command line's tables, CSV and JSON, the
request log lines -- names its fields from :data:`NETWORK_NAMES`, and says an outcome in
the network's words from :data:`DESCRIPTIONS`.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapter.domain.model import Outcome

#: code name -> the network's name
NETWORK_NAMES = {
    "biller_id": "empresa",
    "operation_id": "idOperacion",
    "customer_id": "idCliente",
    "invoice_id": "idFactura",
    "query_id": "idConsulta",
    "receipt_id": "idRecibo",
    "amount": "importe",
    "currency": "moneda",
    "paid_at": "fechaPago",
    "outcome": "codigoRespuesta",
}

#: codigoRespuesta -> descripcion, in PMC's language.
DESCRIPTIONS = {
    Outcome.OK: "OK",
    Outcome.CUSTOMER_UNKNOWN: "Cliente inexistente",
    Outcome.NOTHING_OWED: "El cliente no registra deuda",
    Outcome.INVOICE_UNKNOWN: "Factura inexistente",
    Outcome.ALREADY_PAID: "Factura ya pagada",
    Outcome.EXPIRED: "Factura vencida",
    Outcome.AMOUNT_MISMATCH: "El importe no coincide con el importe a pagar",
    Outcome.OPERATION_CONFLICT: "idOperacion ya recibido con otros datos",
    Outcome.PAYMENT_UNKNOWN: "Pago inexistente",
    Outcome.REVERSAL_NOT_ALLOWED: "Anulacion fuera de plazo",
    Outcome.REVERSAL_MISMATCH: "Los datos de la anulacion no coinciden con el pago",
    Outcome.FUTURE_PAYMENT: "Fecha de pago posterior a la fecha actual",
}


def in_network_words(row: Mapping[str, Any]) -> dict[str, Any]:
    """``row`` with its keys that have a network name renamed to it, in the same order."""
    return {NETWORK_NAMES.get(key, key): value for key, value in row.items()}
