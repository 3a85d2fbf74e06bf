"""Spyne's service: the operations, translated between wire and domain.

This is the one place where Spanish wire names meet English code names. The
gateway (:mod:`adapter.soap.gateway`) has already validated the request
against the contract and checked the biller before spyne sees it.
"""
from __future__ import annotations

import functools
from datetime import datetime

from spyne import Application, ServiceBase, rpc

from adapter.domain.calendar import BUSINESS_TZ
from adapter.domain.model import (Currency, DebtAnswer, DueDate, Invoice, Origin, Outcome,
                                  PaymentAnswer, PaymentNotice, PaymentState, PaymentStatus,
                                  ReversalAnswer, ReversalNotice)
from adapter.errors import AdapterError, InternalError
from adapter.service.billing import BillingService
from adapter.soap import models as wire
from adapter.soap.dispatch import CarriedError, ContractSoap11
from adapter.vocabulary import DESCRIPTIONS


def _billing(ctx) -> BillingService:
    return ctx.app.billing


def _errors_to_the_gateway(method):
    """Carry every exception through spyne to the gateway, which turns it into a fault."""

    @functools.wraps(method)
    def wrapper(ctx, request):
        try:
            return method(ctx, request)
        except AdapterError as error:
            raise CarriedError(error) from error
        except Exception as error:  # a bug: the gateway logs it, the caller learns only its ID
            internal = InternalError(
                f"unexpected {error.__class__.__name__} in {method.__name__}: {error}")
            internal.__cause__ = error  # the log shows where it happened
            raise CarriedError(internal) from error

    return wrapper


# -- wire -> domain -------------------------------------------------------------

def payment_notice(request: wire.InformarPagoSolicitud) -> PaymentNotice:
    return PaymentNotice(
        biller_id=request.idEmpresa, operation_id=request.idOperacion,
        customer_id=request.idCliente, invoice_id=request.idFactura,
        amount=request.importe, currency=Currency(request.moneda),
        paid_at=request.fechaPago, channel=request.canal, query_id=request.idConsulta)


def reversal_notice(request: wire.AnularPagoSolicitud) -> ReversalNotice:
    return ReversalNotice(
        biller_id=request.idEmpresa, operation_id=request.idOperacion,
        customer_id=request.idCliente, invoice_id=request.idFactura,
        amount=request.importe, currency=Currency(request.moneda),
        reversed_at=request.fechaAnulacion, reason=request.motivo)


def new_invoice(request: wire.AltaFacturaSolicitud) -> Invoice:
    return Invoice(
        biller_id=request.idEmpresa, customer_id=request.idCliente,
        invoice_id=request.idFactura, currency=Currency(request.moneda),
        due_dates=tuple(DueDate(due.fecha, due.importe) for due in request.vencimientos),
        origin=Origin.CREATED_ONLINE, description=request.descripcion or "",
        ticket_message=request.mensajeTicket or "",
        screen_message=request.mensajePantalla or "")


# -- domain -> wire -------------------------------------------------------------

def debt_response(answer: DebtAnswer) -> wire.ConsultarDeudaRespuesta:
    return wire.ConsultarDeudaRespuesta(
        codigoRespuesta=int(answer.outcome), descripcion=DESCRIPTIONS[answer.outcome],
        idConsulta=answer.query_id,
        facturas=[wire.Factura(
            idFactura=item.invoice.invoice_id, idCliente=item.invoice.customer_id,
            moneda=item.invoice.currency.value, descripcion=item.invoice.description,
            vencimientos=[wire.Vencimiento(fecha=due.on, importe=due.amount)
                          for due in item.invoice.due_dates],
            importeAPagar=item.amount_due, origen=item.invoice.origin.value)
            for item in answer.open_invoices])


def payment_response(answer: PaymentAnswer) -> wire.InformarPagoRespuesta:
    return wire.InformarPagoRespuesta(
        codigoRespuesta=int(answer.outcome), descripcion=DESCRIPTIONS[answer.outcome],
        idRecibo=answer.receipt_id)


def reversal_response(answer: ReversalAnswer) -> wire.AnularPagoRespuesta:
    return wire.AnularPagoRespuesta(
        codigoRespuesta=int(answer.outcome), descripcion=DESCRIPTIONS[answer.outcome],
        idAnulacion=answer.reversal_id)


STATES = {PaymentState.APPLIED: "APLICADO", PaymentState.OBSERVED: "OBSERVADO",
          PaymentState.REVERSED: "ANULADO",
          PaymentState.COVERED: "APLICADO",  # applied by its payment recorded from the report
          PaymentState.RESOLVED: "APLICADO",  # applied by a person, to an invoice
          PaymentState.DISMISSED: "OBSERVADO"}  # closed by a person, not applied


def payment_status_response(status: PaymentStatus) -> wire.ConsultarPagoRespuesta:
    answer = wire.ConsultarPagoRespuesta(codigoRespuesta=int(status.outcome),
                                         descripcion=DESCRIPTIONS[status.outcome])
    if status.notice is not None:
        answer.estado = STATES[status.state]
        answer.codigoRespuestaAviso = int(status.notice_outcome)
        answer.idRecibo = status.receipt_id
        answer.importe = status.notice.amount
        answer.moneda = status.notice.currency.value
        answer.fechaPago = status.notice.paid_at
    return answer


def echo_response(message: str | None, now: datetime) -> wire.EcoRespuesta:
    return wire.EcoRespuesta(mensaje=message, fechaHora=now)


def invoice_response(outcome: Outcome) -> wire.AltaFacturaRespuesta:
    return wire.AltaFacturaRespuesta(codigoRespuesta=int(outcome),
                                     descripcion=DESCRIPTIONS[outcome])


class ServicioEmpresa(ServiceBase):
    @rpc(wire.ConsultarDeudaSolicitud, _returns=wire.ConsultarDeudaRespuesta,
         _body_style="bare", _in_message_name="ConsultarDeuda",
         _out_message_name="ConsultarDeudaResponse")
    @_errors_to_the_gateway
    def ConsultarDeuda(ctx, request):
        answer = _billing(ctx).query_debt(request.idEmpresa, request.idCliente, request.idFactura)
        return debt_response(answer)

    @rpc(wire.InformarPagoSolicitud, _returns=wire.InformarPagoRespuesta,
         _body_style="bare", _in_message_name="InformarPago",
         _out_message_name="InformarPagoResponse")
    @_errors_to_the_gateway
    def InformarPago(ctx, request):
        return payment_response(_billing(ctx).record_payment(payment_notice(request)))

    @rpc(wire.AnularPagoSolicitud, _returns=wire.AnularPagoRespuesta,
         _body_style="bare", _in_message_name="AnularPago",
         _out_message_name="AnularPagoResponse")
    @_errors_to_the_gateway
    def AnularPago(ctx, request):
        return reversal_response(_billing(ctx).reverse_payment(reversal_notice(request)))

    @rpc(wire.AltaFacturaSolicitud, _returns=wire.AltaFacturaRespuesta,
         _body_style="bare", _in_message_name="AltaFactura",
         _out_message_name="AltaFacturaResponse")
    @_errors_to_the_gateway
    def AltaFactura(ctx, request):
        return invoice_response(_billing(ctx).create_invoice(new_invoice(request)))

    @rpc(wire.ConsultarPagoSolicitud, _returns=wire.ConsultarPagoRespuesta,
         _body_style="bare", _in_message_name="ConsultarPago",
         _out_message_name="ConsultarPagoResponse")
    @_errors_to_the_gateway
    def ConsultarPago(ctx, request):
        return payment_status_response(
            _billing(ctx).payment_status(request.idEmpresa, request.idOperacion))

    @rpc(wire.EcoSolicitud, _returns=wire.EcoRespuesta,
         _body_style="bare", _in_message_name="Eco", _out_message_name="EcoResponse")
    @_errors_to_the_gateway
    def Eco(ctx, request):
        return echo_response(request.mensaje, datetime.now(BUSINESS_TZ))


def spyne_application(billing: BillingService) -> Application:
    application = Application(
        [ServicioEmpresa], tns=wire.NAMESPACE, name="ServicioEmpresa",
        in_protocol=ContractSoap11(validator=None), out_protocol=ContractSoap11())
    application.billing = billing
    return application
