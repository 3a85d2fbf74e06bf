#!/usr/bin/env python3
"""A bare spyne service with the adapter's operations: the baseline for scripts/bench_wrk.py.

It publishes ConsultarDeuda and InformarPago with the adapter's own wire types
(``adapter.soap.models``), the same bare body style and message names as
``adapter.soap.service.ServicioEmpresa``, but nothing else: no gateway, no
contract validation, no database. ConsultarDeuda always answers three open
invoices for the customer asked about; InformarPago always answers OK with a
fresh receipt. It runs on spyne's own ``WsgiApplication`` with a plain
``Soap11(validator=None)``, under gunicorn with the product's settings
(``adapter.gunicorn_app.serve_wsgi``: same worker class, workers and threads).

    .venv/bin/python scripts/bare_spyne.py --bind 127.0.0.1:8090 [--workers 2] [--threads 16]

Any path answers SOAP POSTs (e.g. http://127.0.0.1:8090/soap).
"""
from __future__ import annotations

import argparse
import decimal
import uuid
from datetime import date, timedelta

import adapter  # noqa: F401  (first: applies the spyne compatibility shim, Python 3.12+)
from adapter.gunicorn_app import serve_wsgi
from adapter.soap import models as wire
from spyne import Application, ServiceBase, rpc
from spyne.protocol.soap import Soap11
from spyne.server.wsgi import WsgiApplication

AMOUNT = decimal.Decimal("1500.00")


def three_invoices(customer_id: str) -> list[wire.Factura]:
    """The fixed debt: three open invoices of one due date each, 30 days ahead."""
    due = date.today() + timedelta(days=30)
    return [wire.Factura(
        idFactura=f"F{number}", idCliente=customer_id, moneda="ARS",
        descripcion=f"Factura {number}",
        vencimientos=[wire.Vencimiento(fecha=due, importe=AMOUNT)],
        importeAPagar=AMOUNT, origen="ALTA") for number in (1, 2, 3)]


class ServicioEmpresa(ServiceBase):
    @rpc(wire.ConsultarDeudaSolicitud, _returns=wire.ConsultarDeudaRespuesta,
         _body_style="bare", _in_message_name="ConsultarDeuda",
         _out_message_name="ConsultarDeudaResponse")
    def ConsultarDeuda(ctx, request):
        return wire.ConsultarDeudaRespuesta(
            codigoRespuesta=0, descripcion="OK", idConsulta=uuid.uuid4().hex,
            facturas=three_invoices(request.idCliente))

    @rpc(wire.InformarPagoSolicitud, _returns=wire.InformarPagoRespuesta,
         _body_style="bare", _in_message_name="InformarPago",
         _out_message_name="InformarPagoResponse")
    def InformarPago(ctx, request):
        return wire.InformarPagoRespuesta(codigoRespuesta=0, descripcion="OK",
                                          idRecibo=uuid.uuid4().hex)


def make_app() -> WsgiApplication:
    """Spyne's WSGI application for the bare service (called in each gunicorn worker)."""
    application = Application(
        [ServicioEmpresa], tns=wire.NAMESPACE, name="ServicioEmpresa",
        in_protocol=Soap11(validator=None), out_protocol=Soap11())
    return WsgiApplication(application)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bind", default="127.0.0.1:8090", help="HOST:PORT")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args()
    serve_wsgi(make_app, bind=args.bind, workers=args.workers, threads=args.threads,
               log_level=args.log_level)


if __name__ == "__main__":
    main()
