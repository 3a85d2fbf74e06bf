"""PMC's JSON field names and the domain's, in one place (what soap/service.py is for
the Webservice): a validated request becomes a domain value, a domain answer
becomes the contract's JSON."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from adapter.domain.model import Currency, DebtAnswer, Outcome, PaymentNotice
from adapter.errors import SchemaViolation

# PMC's currencies: the codes, and the digits the network's files write (FAC, COB).
CURRENCIES = {"ARS": Currency.ARS, "USD": Currency.USD, "0": Currency.ARS, "1": Currency.USD}

# The answers' codes: two digits, as PMC's integrations answer "00".
MESSAGES = {
    Outcome.OK: "OK",
    Outcome.CUSTOMER_UNKNOWN: "Cliente inexistente",
    Outcome.NOTHING_OWED: "El cliente no registra deuda",
    Outcome.INVOICE_UNKNOWN: "Factura inexistente",
}


def code(outcome: Outcome) -> str:
    return f"{int(outcome):02d}"


def day(field: str, text: str) -> date:
    """``YYYY-MM-DD`` or ``YYYYMMDD`` (the contract's pattern), as a real calendar day."""
    digits = text.replace("-", "")
    try:
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        raise SchemaViolation(f"{field}: {text!r} is not a calendar day") from None


def instant(field: str, text: str) -> datetime:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise SchemaViolation(f"{field}: {text!r} is not an instant") from None


def payment_notice(body: dict[str, Any], biller_id: str, received_at: datetime) -> PaymentNotice:
    """The notice of a valid ``payment_notify`` body; timed by ``payment_date``, or
    when it was received. ``due_date`` and ``description`` are checked, not kept:
    a payment is judged on the day it was made, as a SOAP notice is."""
    if "due_date" in body:
        day("due_date", body["due_date"])
    stated = "payment_date" in body
    return PaymentNotice(
        biller_id=biller_id, operation_id=body["operation_id"],
        customer_id=body["customer_id"], invoice_id=body["invoice_id"],
        amount=Decimal(body["amount"]) if isinstance(body["amount"], str) else body["amount"],
        currency=CURRENCIES[body["currency"]],
        paid_at=instant("payment_date", body["payment_date"]) if stated else received_at,
        paid_at_stated=stated)


def payment_stored(receipt_id: str) -> dict[str, Any]:
    return {"code": code(Outcome.OK), "message": "OK", "receipt_id": receipt_id}


def debt_answer(answer: DebtAnswer) -> dict[str, Any]:
    return {
        "code": code(answer.outcome), "message": MESSAGES[answer.outcome],
        "query_id": answer.query_id,
        "invoices": [{
            "invoice_id": item.invoice.invoice_id, "customer_id": item.invoice.customer_id,
            "currency": item.invoice.currency.value, "description": item.invoice.description,
            "due_dates": [{"due_date": due.on.isoformat(), "amount": f"{due.amount:.2f}"}
                          for due in item.invoice.due_dates],
            "amount_due": f"{item.amount_due:.2f}", "origin": item.invoice.origin.value}
            for item in answer.open_invoices]}
