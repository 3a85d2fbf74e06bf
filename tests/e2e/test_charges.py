"""`pmc-adapter charges` over a real server's queries and notices (SQLite and PostgreSQL):
which debt queries the network may charge for (the rule on its own:
tests/unit/test_charges_rule.py)."""
from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
import zeep

from adapter.domain.charges import BY_CLIENT, BY_QUERY_ID
from adapter.domain.model import Currency, DueDate, Invoice, Origin
from adapter.storage.db import make_engine
from adapter.storage.unit_of_work import Storage
from support.data import today
from support.servers import start_server, stop_server

CLI = str(Path(sys.executable).with_name("pmc-adapter"))
BA = timezone(timedelta(hours=-3))


@pytest.fixture
def charging(own_database, tmp_path):
    server = start_server(own_database, tmp_path)
    storage = Storage(make_engine(own_database))
    for customer in ("C1", "C2", "C3", "C4", "C5"):
        with storage.unit_of_work() as uow:
            uow.invoices.save(Invoice("1234", customer, "F-1", Currency.ARS,
                                      (DueDate(today() + timedelta(10), Decimal("10.00")),),
                                      Origin.BILLING_BASE))
            uow.commit()
    yield server
    stop_server(server)
    storage.engine.dispose()


def test_the_months_charges_list_every_query_billable_or_not(charging):
    pmc = zeep.Client(charging.soap_url + "?wsdl")

    def ask(customer, **invoice):
        return pmc.service.ConsultarDeuda(idEmpresa="1234", idCliente=customer,
                                          **invoice).idConsulta

    def pay(customer, operation, query_id=None):
        return pmc.service.InformarPago(
            idEmpresa="1234", idOperacion=operation, idCliente=customer, idFactura="F-1",
            importe="10.00", moneda="ARS", fechaPago=paid_at, idConsulta=query_id)

    q1 = ask("C1")
    q2 = ask("C2", idFactura="F-1")
    q3 = ask("C3")
    q4 = ask("C4")
    q5a, q5b = ask("C5"), ask("C5")
    paid_at = datetime.now(BA).isoformat()  # after the queries
    assert pay("C1", "OP-1", q1).codigoRespuesta == 0
    assert pay("C2", "OP-2").codigoRespuesta == 0
    assert pay("C4", "OP-4").codigoRespuesta == 0
    assert pmc.service.AnularPago(idEmpresa="1234", idOperacion="OP-4", idCliente="C4",
                                  idFactura="F-1", importe="10.00", moneda="ARS",
                                  fechaAnulacion=paid_at).codigoRespuesta == 0
    assert pay("C5", "OP-5").codigoRespuesta == 0
    month = datetime.fromisoformat(paid_at).strftime("%Y-%m")
    result = subprocess.run(
        [CLI, "charges", "--month", month, "--format", "csv"], capture_output=True, text=True,
        timeout=120, env={**os.environ, "PMC_ADAPTER_DATABASE_URL": charging.database.url,
                          "PMC_ADAPTER_EMPRESAS": "1234"})
    assert result.returncode == 0, result.stderr
    rows = {row["idConsulta"]: (row["billable"], row["idOperacion"], row["rule"])
            for row in csv.DictReader(io.StringIO(result.stdout))}
    assert rows == {q1: ("yes", "OP-1", BY_QUERY_ID), q2: ("yes", "OP-2", BY_CLIENT),
                    q3: ("no", "", ""), q4: ("no", "", ""),  # its payment was reversed
                    q5a: ("no", "", ""), q5b: ("yes", "OP-5", BY_CLIENT)}
    table = subprocess.run(
        [CLI, "charges", "--month", month], capture_output=True, text=True, timeout=120,
        env={**os.environ, "PMC_ADAPTER_DATABASE_URL": charging.database.url,
             "PMC_ADAPTER_EMPRESAS": "1234"})
    assert "6 queries, 3 billable (ended in a payment), 3 not" in table.stdout
