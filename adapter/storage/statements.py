"""The statements of the hot paths (every debt query, every notice), built once: Core
on the tables, not ORM objects. Key parameters are named k_* (not column names,
which an UPDATE's SET clause reserves)."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import and_, bindparam, exists, func, insert, select, update

from adapter.domain.model import Currency, ReversalState
from adapter.storage.orm import (ForwardRow, InvoiceRow, PaymentRow, PmcDeliveryRow, QueryRow,
                                 ReportLineRow, ReversalRow)


# The statements of the hot paths (every debt query, every notice), built once: Core
# on the tables, not ORM objects. Key parameters are named k_* (not column names,
# which an UPDATE's SET clause reserves).
INVOICES = InvoiceRow.__table__
PAYMENTS = PaymentRow.__table__
INVOICE_KEY = and_(INVOICES.c.biller_id == bindparam("k_biller"),
                    INVOICES.c.customer_id == bindparam("k_customer"),
                    INVOICES.c.invoice_id == bindparam("k_invoice"))
INVOICE = select(INVOICES).where(INVOICE_KEY)
INVOICE_LOCKED = INVOICE.with_for_update()
INVOICES_OF_CUSTOMER = (select(INVOICES)
                         .where(INVOICES.c.biller_id == bindparam("k_biller"),
                                INVOICES.c.customer_id == bindparam("k_customer"))
                         .order_by(INVOICES.c.pk))
PAY_INVOICE = (update(INVOICES).where(INVOICE_KEY, INVOICES.c.status == "open")
                .values(status="paid", updated_at=bindparam("now"))
                .returning(INVOICES.c.pk))
PAYMENT_OF_OPERATION = select(PAYMENTS).where(
    PAYMENTS.c.biller_id == bindparam("k_biller"),
    PAYMENTS.c.operation_id == bindparam("k_operation"))
ADD_PAYMENT = insert(PAYMENTS)
ADD_FORWARD = insert(ForwardRow.__table__)
ADD_PMC_DELIVERY = insert(PmcDeliveryRow.__table__)
REVERSALS = ReversalRow.__table__
REVERSAL_OF_OPERATION = select(REVERSALS).where(
    REVERSALS.c.biller_id == bindparam("k_biller"),
    REVERSALS.c.operation_id == bindparam("k_operation"))
ADD_REVERSAL = insert(REVERSALS)
QUERIES = QueryRow.__table__
OPERATION_LOCK = select(func.pg_advisory_xact_lock(bindparam("k_lock")))
COVERING = PAYMENTS.alias("covering")
LINES = ReportLineRow.__table__
# The payment recorded from a report line that a notice is the late notice of (same
# client, invoice and amount in pesos, paid the same day or the one before or after),
# if there is one no other notice covers yet.
REPORTED_TWIN = (
    select(PAYMENTS.c.pk)
    .join(LINES, LINES.c.pk == PAYMENTS.c.report_line_pk)
    .where(bindparam("k_currency") == Currency.ARS.value,  # the report is in pesos
           LINES.c.biller_id == bindparam("k_biller"),
           LINES.c.paid_on.between(bindparam("k_first_day"), bindparam("k_last_day")),
           LINES.c.customer_id == bindparam("k_customer"),
           LINES.c.invoice_id == bindparam("k_invoice"),
           PAYMENTS.c.amount == bindparam("k_amount"),
           ~exists().where(COVERING.c.covered_by_pk == PAYMENTS.c.pk))
    .order_by(PAYMENTS.c.pk).limit(1))
# What a notice must know before it is stored, in one round trip: whether its operation
# was stored already (a replay), the report's payment it is the late notice of, and a
# reversal that came first and waits for it.
PRECEDENTS = select(
    select(PAYMENTS.c.pk).where(PAYMENTS.c.biller_id == bindparam("k_biller"),
                                 PAYMENTS.c.operation_id == bindparam("k_operation"))
    .scalar_subquery().label("stored"),
    REPORTED_TWIN.scalar_subquery().label("twin"),
    select(REVERSALS.c.pk).where(REVERSALS.c.biller_id == bindparam("k_biller"),
                                  REVERSALS.c.operation_id == bindparam("k_operation"),
                                  REVERSALS.c.status == ReversalState.PENDING.value)
    .scalar_subquery().label("reversal"))
ONE_DAY = timedelta(days=1)


INVOICE_COLUMNS = tuple(column.name for column in INVOICES.columns
                         if column.name not in ("pk", "created_at"))
REPLACE_INVOICE = (update(INVOICES).where(INVOICE_KEY)
                    .values({column: bindparam(f"v_{column}") for column in INVOICE_COLUMNS}))
