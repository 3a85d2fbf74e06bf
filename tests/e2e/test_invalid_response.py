"""A response the contract refuses is a bug: logged, replaced by a Server fault, never sent.

The real gateway and the real spyne service run on a real WSGI server on
loopback; only the billing use case behind them is replaced by one that
answers what the contract does not allow.
"""
import logging
import threading
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest

from adapter.config import Settings
from adapter.domain.model import DebtAnswer, Outcome
from adapter.soap.dispatch import SpyneDispatcher
from adapter.soap.gateway import Gateway
from adapter.soap.service import spyne_application
from support.soap import RawSoap


class BrokenBilling:
    """Answers a debt query with a 40-character query ID (the contract allows 36)."""

    def query_debt(self, biller_id, customer_id, invoice_id=None):
        return DebtAnswer(Outcome.NOTHING_OWED, "Q" * 40)

    def create_invoice(self, invoice):
        raise ZeroDivisionError("a bug in the use case")


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def broken_server(schema):
    gateway = Gateway(SpyneDispatcher(spyne_application(BrokenBilling())), Settings(),
                      health_check=lambda: None)
    httpd = make_server("127.0.0.1", 0, gateway, handler_class=_Quiet)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield RawSoap(f"http://127.0.0.1:{httpd.server_port}/soap", schema)
    httpd.shutdown()
    httpd.server_close()


def test_invalid_response_becomes_a_logged_server_fault(broken_server, caplog):
    with caplog.at_level(logging.ERROR, logger="adapter.soap.gateway"):
        reply = broken_server.call("ConsultarDeuda", [("idEmpresa", "1234"), ("idCliente", "C1")])
    assert reply.fault_code == "soap:Server.InvalidResponse"
    assert "Q" * 40 not in reply.fault_string
    error_id = reply.fault_string.rpartition("error ID ")[2].rstrip(")")
    (logged,) = (record.getMessage() for record in caplog.records)  # logged once
    assert "/ConsultarDeudaResponse/idConsulta" in logged
    assert "Q" * 40 in logged  # the log keeps what was refused
    assert f"error {error_id} " in logged  # and the fault's ID finds it


def test_unexpected_error_is_a_server_fault_in_the_contract_shape(broken_server, caplog):
    with caplog.at_level(logging.ERROR):
        reply = broken_server.call("AltaFactura", [
            ("idEmpresa", "1234"), ("idCliente", "C1"), ("idFactura", "F1"), ("moneda", "ARS"),
            ("vencimientos", [("vencimiento", [("fecha", "2030-01-01"), ("importe", "1")])])])
    assert reply.fault_code == "soap:Server.InternalError"
    assert "ZeroDivisionError" not in reply.fault_string  # internals stay in the log
    error_id = reply.fault_string.rpartition("error ID ")[2].rstrip(")")
    (record,) = [r for r in caplog.records if error_id in r.getMessage()]
    assert "ZeroDivisionError" in record.getMessage()
    assert "in create_invoice" in record.exc_text  # the traceback of the bug itself



def test_a_crash_in_the_gateway_itself_is_still_a_soap_fault(schema, caplog):
    def crashing_dispatcher(request):
        raise RuntimeError("secret internals")

    gateway = Gateway(crashing_dispatcher, Settings(), health_check=lambda: None)
    httpd = make_server("127.0.0.1", 0, gateway, handler_class=_Quiet)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        with caplog.at_level(logging.ERROR):
            reply = RawSoap(f"http://127.0.0.1:{httpd.server_port}/soap", schema).call(
                "ConsultarDeuda", [("idEmpresa", "1234"), ("idCliente", "C1")])
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert reply.fault_code == "soap:Server.InternalError"  # an envelope, not an HTML page
    assert "secret" not in reply.fault_string
    assert any("secret internals" in record.getMessage() for record in caplog.records)
