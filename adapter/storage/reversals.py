"""The reversals (AnularPago): applied, or kept until their payment arrives."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import update

from adapter.domain.model import Currency, Outcome, ReversalNotice, ReversalState, StoredReversal
from adapter.storage.statements import REVERSALS, REVERSAL_OF_OPERATION, ADD_REVERSAL
from adapter.storage.transaction import Transaction


def reversal_from_row(row) -> ReversalNotice:
    return ReversalNotice(
        biller_id=row.biller_id, operation_id=row.operation_id, customer_id=row.customer_id,
        invoice_id=row.invoice_id, amount=row.amount, currency=Currency(row.currency),
        reversed_at=row.reversed_at, reason=row.reason)


class Reversals:
    def __init__(self, transaction: Transaction):
        self._tx = transaction

    def get(self, biller_id: str, operation_id: str) -> StoredReversal | None:
        """The reversal of this biller's payment with this operation ID, if one came."""
        row = self._tx.execute(
            REVERSAL_OF_OPERATION, {"k_biller": biller_id, "k_operation": operation_id}).first()
        if row is None:
            return None
        return StoredReversal(
            reversal_from_row(row), row.reversal_id, Outcome(row.response_code),
            ReversalState(row.status), row.received_at,
            None if row.refusal_code is None else Outcome(row.refusal_code))

    def add(self, reversal: ReversalNotice, reversal_id: str, outcome: Outcome,
            received_at: datetime, payment_pk: int | None) -> None:
        """Store a reversal: applied to that payment, or (none) pending."""
        self._tx.execute(ADD_REVERSAL, dict(
            reversal_id=reversal_id, biller_id=reversal.biller_id,
            operation_id=reversal.operation_id, customer_id=reversal.customer_id,
            invoice_id=reversal.invoice_id, amount=reversal.amount,
            currency=reversal.currency.value, reversed_at=reversal.reversed_at,
            reason=reversal.reason,
            status="applied" if payment_pk is not None else "pending",
            response_code=int(outcome), refusal_code=None, payment_pk=payment_pk,
            received_at=received_at))

    def settle(self, biller_id: str, operation_id: str, *, payment_pk: int | None = None,
               refusal: Outcome | None = None) -> None:
        """A pending reversal whose payment arrived: applied to it, or refused."""
        values = (dict(status="applied", payment_pk=payment_pk) if refusal is None
                  else dict(status="refused", refusal_code=int(refusal)))
        self._tx.execute(update(REVERSALS).where(
            REVERSALS.c.biller_id == biller_id, REVERSALS.c.operation_id == operation_id,
            REVERSALS.c.status == "pending").values(**values))
