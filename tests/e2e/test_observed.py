"""Observed payments wait for a person: `pmc-adapter observed` lists them, `resolve`
applies one to an invoice (and the ERP is told) or dismisses it, once, with who, when
and why. Over a real server, the bundled ERP and the database (SQLite, PostgreSQL)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import zeep

from adapter.domain.model import Currency, DueDate, Invoice, Origin
from support.data import today
from support.servers import erp_env, server_with_erp, wait_until

CLI = str(Path(sys.executable).with_name("pmc-adapter"))


@pytest.fixture
def desk(own_database, tmp_path):
    rows = [f"E1,EF-1,ARS,{today() + timedelta(30)},10.00,,,,"]
    with server_with_erp(own_database, tmp_path, rows) as (server, erp, storage):
        for customer, invoice_id, amount in [("C1", "F-1", "10.00"), ("C2", "F-2", "20.00"),
                                             ("C2", "F-3", "30.00")]:
            with storage.unit_of_work() as uow:
                uow.invoices.save(Invoice("1234", customer, invoice_id, Currency.ARS,
                                          (DueDate(today() + timedelta(10), Decimal(amount)),),
                                          Origin.BILLING_BASE))
                uow.commit()
        environment = {**os.environ, **erp_env(erp), "PMC_ADAPTER_DATABASE_URL": own_database,
                       "PMC_ADAPTER_EMPRESAS": "1234"}
        yield server, erp, zeep.Client(server.soap_url + "?wsdl"), environment


def pay(pmc, customer, invoice_id, amount, operation):
    return pmc.service.InformarPago(
        idEmpresa="1234", idOperacion=operation, idCliente=customer, idFactura=invoice_id,
        importe=amount, moneda="ARS", fechaPago=f"{today()}T00:00:00-03:00")


def run(environment, *arguments):
    return subprocess.run([CLI, *arguments], capture_output=True, text=True, timeout=120,
                          env=environment)


def test_an_observed_payment_applied_by_a_person_pays_the_invoice_once(desk):
    server, erp, pmc, environment = desk
    notice = pay(pmc, "C1", "F-TYPO", "10.00", "OP-1")
    assert notice.codigoRespuesta == 3
    listed = json.loads(run(environment, "observed", "--json").stdout)
    assert [(row["idRecibo"], row["idOperacion"], row["why"]) for row in listed] == \
        [(notice.idRecibo, "OP-1", "3 Factura inexistente")]

    applied = run(environment, "resolve", notice.idRecibo, "--apply-to", "F-1",
                  "--operator", "ana", "--reason", "the client mistyped the invoice")
    assert applied.returncode == 0, applied.stderr
    assert f"payment {notice.idRecibo} (OP-1) applied to invoice F-1" in applied.stdout
    assert pmc.service.ConsultarDeuda(idEmpresa="1234", idCliente="C1").codigoRespuesta == 2
    status = pmc.service.ConsultarPago(idEmpresa="1234", idOperacion="OP-1")
    assert (status.estado, status.codigoRespuestaAviso) == ("APLICADO", 3)
    (decision,) = server.database.rows(
        "SELECT action, operator, reason FROM payment_decisions")
    assert tuple(decision) == ("applied", "ana", "the client mistyped the invoice")
    # the ERP got the payment unapplied, then the person's decision
    wait_until(lambda: (erp.payment("OP-1") or {}).get("applied_to") == "F-1",
               what="the ERP told to apply it")
    assert json.loads(run(environment, "observed", "--json").stdout) == []

    again = run(environment, "resolve", notice.idRecibo, "--dismiss", "--operator", "bob",
                "--reason", "duplicate")
    assert again.returncode == 1
    assert "was already applied by ana" in again.stderr


def test_a_dismissal_needs_a_reason_and_a_refused_decision_changes_nothing(desk):
    server, _erp, pmc, environment = desk
    notice = pay(pmc, "C2", "F-2", "25.00", "OP-2")
    assert notice.codigoRespuesta == 6
    wrong_amount = run(environment, "resolve", notice.idRecibo, "--apply-to", "F-3",
                       "--operator", "ana")
    assert wrong_amount.returncode == 1
    assert "25.00 is none of invoice F-3's amounts (30.00)" in wrong_amount.stderr
    no_reason = run(environment, "resolve", notice.idRecibo, "--dismiss", "--operator", "ana")
    assert no_reason.returncode == 1 and "say why" in no_reason.stderr
    assert server.database.count("payment_decisions") == 0
    assert server.database.count("invoices", status="paid") == 0
    dismissed = run(environment, "resolve", notice.idRecibo, "--dismiss", "--operator", "ana",
                    "--reason", "refunded by the network")
    assert dismissed.returncode == 0, dismissed.stderr
    status = pmc.service.ConsultarPago(idEmpresa="1234", idOperacion="OP-2")
    assert (status.estado, status.codigoRespuestaAviso) == ("OBSERVADO", 6)
    assert server.database.count("payments", status="dismissed") == 1


def test_two_people_deciding_at_once_make_one_decision(desk):
    server, _erp, pmc, environment = desk
    notice = pay(pmc, "C2", "F-NONE", "20.00", "OP-3")
    assert notice.codigoRespuesta == 3
    command = [CLI, "resolve", notice.idRecibo, "--apply-to", "F-2", "--customer", "C2",
               "--reason", "found it"]
    racing = [subprocess.Popen(command + ["--operator", who], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=environment)
              for who in ("ana", "bob", "eva")]
    results = [(process.wait(timeout=120), process.communicate()) for process in racing]
    assert sorted(code for code, _ in results) == [0, 1, 1], results
    assert all("was already applied by" in err for code, (_, err) in results if code == 1)
    assert server.database.count("payment_decisions") == 1
    assert server.database.count("invoices", customer_id="C2", status="paid") == 1
