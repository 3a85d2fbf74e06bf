"""The migrations build exactly the schema the models declare, on SQLite and PostgreSQL."""
import uuid
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import column, create_engine, insert, select, table, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from adapter.storage.db import MIGRATIONS, create_database_file, make_engine, upgrade_schema
from adapter.storage.orm import Base, ForwardRow, InvoiceRow, Money, PaymentRow, UtcDateTime


def fresh_database(database_url: str, tmp_path) -> str:
    if database_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    name = f"pmc_adapter_migrations_{uuid.uuid4().hex[:8]}"
    admin = create_engine(database_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(database_url).set(database=name).render_as_string(hide_password=False)


def drop(database_url: str, url: str) -> None:
    if not url.startswith("sqlite"):
        admin = create_engine(database_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{make_url(url).database}" WITH (FORCE)'))
        admin.dispose()


def test_migrations_build_the_models_schema_and_run_once(database_url, tmp_path):
    url = fresh_database(database_url, tmp_path)
    engine = make_engine(url)
    try:
        assert upgrade_schema(engine) == ["0001", "0002", "0003", "0004", "0005", "0006",
                                         "0007", "0008", "0009"]
        assert upgrade_schema(engine) == []  # up to date: nothing to do
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(
                connection, opts={"compare_type": True}), Base.metadata)
        assert differences == []
    finally:
        engine.dispose()
        drop(database_url, url)


def test_0002_keeps_stored_payments_and_their_outbox(database_url, tmp_path):
    """0002 rebuilds ``payments`` on SQLite (batch mode): a database with payments, and
    outbox rows pointing at them, upgrades with every row and reference intact, and then
    takes one operation ID for two billers."""
    now = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
    url = fresh_database(database_url, tmp_path)
    engine = make_engine(url)
    create_database_file(engine)  # an engine opens a database, never creates one
    try:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "0001")
        with Session(engine) as session:
            invoice = InvoiceRow(biller_id="1234", customer_id="C1", invoice_id="F1",
                                 currency="ARS", origin="BASE", status="paid",
                                 due_date_1=date(2026, 12, 1), amount_1=Decimal("10.00"),
                                 created_at=now, updated_at=now)
            session.add(invoice)
            session.flush()
            # the payment and the outbox row as 0001 knew them (the models are the latest
            # schema's)
            old_payments = table(
                "payments", *map(column, ("pk", "operation_id", "receipt_id", "biller_id",
                                          "customer_id", "invoice_id", "currency", "status",
                                          "response_code", "applied_invoice_pk")),
                column("amount", Money()), column("paid_at", UtcDateTime()),
                column("received_at", UtcDateTime()))
            payment_pk = session.execute(insert(old_payments).values(
                operation_id="OP-1", receipt_id="R-1", biller_id="1234", customer_id="C1",
                invoice_id="F1", amount=Decimal("10.00"), currency="ARS", paid_at=now,
                status="applied", response_code=0, applied_invoice_pk=invoice.pk,
                received_at=now).returning(old_payments.c.pk)).scalar_one()
            old_forwards = table("erp_forwards", column("payment_pk"), column("status"),
                                 column("attempts"), column("next_attempt_at", UtcDateTime()),
                                 column("created_at", UtcDateTime()))
            session.execute(insert(old_forwards).values(
                payment_pk=payment_pk, status="pending", attempts=0, next_attempt_at=now,
                created_at=now))
            session.commit()
            before = session.execute(select(PaymentRow.pk, PaymentRow.operation_id,
                                            PaymentRow.amount, PaymentRow.paid_at)).all()

        assert upgrade_schema(engine) == ["0002", "0003", "0004", "0005", "0006", "0007", "0008", "0009"]

        with Session(engine) as session:
            assert session.execute(select(PaymentRow.pk, PaymentRow.operation_id,
                                          PaymentRow.amount, PaymentRow.paid_at)).all() == before
            assert session.execute(select(ForwardRow.payment_pk, ForwardRow.kind)).all() == \
                [(before[0].pk, "payment")]
            # 0006: a notice stored before gave its time (fechaPago is required)
            assert session.execute(select(PaymentRow.paid_at_stated)).scalars().all() == [True]
            session.add(PaymentRow(operation_id="OP-1", receipt_id="R-2", biller_id="5678",
                                   customer_id="C1", invoice_id="F1", amount=Decimal("10.00"),
                                   currency="ARS", paid_at=now, status="observed",
                                   response_code=11, received_at=now))
            session.commit()
            session.add(PaymentRow(operation_id="OP-1", receipt_id="R-3", biller_id="5678",
                                   customer_id="C1", invoice_id="F1", amount=Decimal("10.00"),
                                   currency="ARS", paid_at=now, status="observed",
                                   response_code=3, received_at=now))
            with pytest.raises(IntegrityError):
                session.commit()
            session.rollback()
            # the outbox still refuses a forward of a payment that does not exist
            session.add(ForwardRow(payment_pk=999_999, status="pending", attempts=0,
                                   next_attempt_at=now, created_at=now))
            with pytest.raises(IntegrityError):
                session.commit()
    finally:
        engine.dispose()
        drop(database_url, url)
