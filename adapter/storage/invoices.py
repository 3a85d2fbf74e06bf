"""The invoices: stored from the billing base, created online, or from the ERP."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select

from adapter.domain.model import Currency, DueDate, Invoice, Origin, utcnow
from adapter.domain.billing_base import InvoiceKey
from adapter.storage.orm import InvoiceRow
from adapter.storage.statements import (INVOICES, INVOICE, INVOICE_LOCKED, INVOICES_OF_CUSTOMER,
                                        PAY_INVOICE, REPLACE_INVOICE)
from adapter.storage.transaction import Transaction


def invoice_key(biller_id: str, customer_id: str, invoice_id: str) -> dict[str, str]:
    return {"k_biller": biller_id, "k_customer": customer_id, "k_invoice": invoice_id}


def invoice_from_row(row) -> Invoice:
    """The invoice of an InvoiceRow, or of a row of its table (same names)."""
    pairs = [(row.due_date_1, row.amount_1), (row.due_date_2, row.amount_2),
             (row.due_date_3, row.amount_3)]
    return Invoice(
        biller_id=row.biller_id, customer_id=row.customer_id, invoice_id=row.invoice_id,
        currency=Currency(row.currency),
        due_dates=tuple(DueDate(on, amount) for on, amount in pairs if on is not None),
        origin=Origin(row.origin), description=row.description,
        ticket_message=row.ticket_message, screen_message=row.screen_message,
        paid=row.status == "paid")


def invoice_values(invoice: Invoice, now: datetime) -> dict:
    """An invoice's columns (all but ``pk`` and ``created_at``)."""
    values = dict(biller_id=invoice.biller_id, customer_id=invoice.customer_id,
                  invoice_id=invoice.invoice_id, currency=invoice.currency.value,
                  origin=invoice.origin.value, description=invoice.description,
                  ticket_message=invoice.ticket_message,
                  screen_message=invoice.screen_message,
                  status="paid" if invoice.paid else "open", updated_at=now)
    padded = list(invoice.due_dates) + [None] * (3 - len(invoice.due_dates))
    for position, due in enumerate(padded, start=1):
        values[f"due_date_{position}"] = due.on if due else None
        values[f"amount_{position}"] = due.amount if due else None
    return values


def write_invoice(row: InvoiceRow, invoice: Invoice) -> None:
    for column, value in invoice_values(invoice, utcnow()).items():
        setattr(row, column, value)


class Invoices:
    def __init__(self, transaction: Transaction):
        self._tx = transaction

    def _row(self, biller_id: str, customer_id: str, invoice_id: str, *,
             lock: bool = False) -> InvoiceRow | None:
        stmt = select(InvoiceRow).where(
            InvoiceRow.biller_id == biller_id, InvoiceRow.customer_id == customer_id,
            InvoiceRow.invoice_id == invoice_id)
        if lock:
            stmt = stmt.with_for_update()
        return self._tx.session.scalars(stmt).one_or_none()

    def get(self, biller_id: str, customer_id: str, invoice_id: str, *,
            lock: bool = False) -> Invoice | None:
        """One invoice; ``lock`` holds it until commit (PostgreSQL: row lock)."""
        found = self.keyed(biller_id, customer_id, invoice_id, lock=lock)
        return None if found is None else found[1]

    def keyed(self, biller_id: str, customer_id: str, invoice_id: str, *,
              lock: bool = False) -> tuple[int, Invoice] | None:
        """One invoice with its key, or None; ``lock`` as for :meth:`get`."""
        row = self._tx.execute(
            INVOICE_LOCKED if lock else INVOICE,
            invoice_key(biller_id, customer_id, invoice_id)).first()
        return None if row is None else (row.pk, invoice_from_row(row))

    def of_customer(self, biller_id: str, customer_id: str) -> list[Invoice]:
        rows = self._tx.execute(
            INVOICES_OF_CUSTOMER, {"k_biller": biller_id, "k_customer": customer_id})
        return [invoice_from_row(row) for row in rows]

    def mark_paid(self, biller_id: str, customer_id: str, invoice_id: str) -> int | None:
        """Mark the stored, open invoice paid; its key, or None if there is no such one."""
        return self._tx.execute(
            PAY_INVOICE, {**invoice_key(biller_id, customer_id, invoice_id),
                           "now": utcnow()}).scalar_one_or_none()

    def of_keys(self, keys: list[InvoiceKey], *, lock: bool = False) -> dict[InvoiceKey, Invoice]:
        """The stored invoices of these (biller, customer, invoice) keys, one statement per
        biller; ``lock`` as for :meth:`get`. Looked up by biller and client (an index
        seek on SQLite, whose planner would scan the table for a row-value IN), the
        invoice checked after."""
        wanted = set(keys)
        found: dict[InvoiceKey, Invoice] = {}
        for biller_id in sorted({key[0] for key in wanted}):
            stmt = select(INVOICES).where(
                INVOICES.c.biller_id == biller_id,
                INVOICES.c.customer_id.in_(sorted({key[1] for key in wanted
                                                    if key[0] == biller_id})))
            if lock:
                stmt = stmt.with_for_update()
            for row in self._tx.execute(stmt):
                key = (row.biller_id, row.customer_id, row.invoice_id)
                if key in wanted:
                    found[key] = invoice_from_row(row)
        return found

    def open_keys(self, biller_id: str, origin: Origin) -> set[tuple[str, str]]:
        """(client, invoice) of the biller's open invoices from ``origin``."""
        return {(row.customer_id, row.invoice_id) for row in self._tx.execute(
            select(INVOICES.c.customer_id, INVOICES.c.invoice_id).where(
                INVOICES.c.biller_id == biller_id, INVOICES.c.origin == origin.value,
                INVOICES.c.status == "open"))}

    def open_of_origin(self, biller_id: str, origin: Origin, after: int,
                       limit: int) -> list[tuple[int, Invoice]]:
        """The biller's open invoices from ``origin`` stored under keys above ``after``,
        ``limit`` of them in key order, with their keys (page by page: flat memory)."""
        rows = self._tx.execute(
            select(INVOICES).where(INVOICES.c.biller_id == biller_id,
                                    INVOICES.c.origin == origin.value,
                                    INVOICES.c.status == "open", INVOICES.c.pk > after)
            .order_by(INVOICES.c.pk).limit(limit))
        return [(row.pk, invoice_from_row(row)) for row in rows]

    def write_many(self, created: list[Invoice], replaced: list[Invoice]) -> None:
        """Insert ``created`` and overwrite the stored invoices with the identities of
        ``replaced``, each list in one batch (``executemany``)."""
        now = utcnow()
        if created:
            self._tx.execute(insert(INVOICES), [
                {**invoice_values(invoice, now), "created_at": now} for invoice in created])
        if replaced:
            self._tx.execute(REPLACE_INVOICE, [
                {**{f"v_{column}": value for column, value in
                    invoice_values(invoice, now).items()},
                 **invoice_key(invoice.biller_id, invoice.customer_id, invoice.invoice_id)}
                for invoice in replaced])

    def save(self, invoice: Invoice) -> int:
        """Insert the invoice, or overwrite the stored one with the same identity;
        returns its key."""
        row = self._row(invoice.biller_id, invoice.customer_id, invoice.invoice_id)
        if row is None:
            row = InvoiceRow(created_at=utcnow())
            self._tx.session.add(row)
        write_invoice(row, invoice)
        self._tx.session.flush()
        return row.pk
