"""The wire messages as spyne types, mirroring ``xsd/pmc-adapter.xsd``.

Names here are the contract's (Spanish); :mod:`adapter.soap.service`
translates them to the domain's. ``tests/test_contract.py`` proves that the
schema spyne derives from these classes and the bundled one agree.
"""
import decimal
from datetime import datetime, timezone

from spyne import Array, ComplexModel, Date, DateTime, Decimal, Integer32, Unicode

NAMESPACE = "urn:pmc-adapter:empresa:v1"


def required(kind):
    return kind.customize(min_occurs=1, nillable=False)


def optional(kind):
    return kind.customize(min_occurs=0, nillable=False)


# Simple types stay unnamed: spyne would put named ones in a namespace of its
# own. What matters, and what the agreement test compares, is the facets.
IdEmpresa = Unicode(pattern="[0-9]{4}")
IdCliente = Unicode(min_len=1, max_len=19, pattern=r"[^ \t\n\r](.*[^ \t\n\r])?")
IdFactura = Unicode(min_len=1, max_len=20, pattern=r"[^ \t\n\r](.*[^ \t\n\r])?")
IdOperacion = Unicode(min_len=1, max_len=36, pattern=r"[!-~]+")  # printable ASCII, no space
IdConsulta = IdRecibo = IdAnulacion = IdOperacion
Importe = Decimal(ge=0, le=decimal.Decimal("9999999999999.99"), total_digits=15, fraction_digits=2)
Moneda = Unicode(values=["ARS", "USD"])
FechaHoraConZona = DateTime(
    pattern=r"[0-9]{4}-[0-9]{2}-[0-9]{2}T([01][0-9]|2[0-3]):[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?"
            r"(Z|[+\-][0-9]{2}:[0-9]{2})",
    ge=datetime(1, 1, 2, tzinfo=timezone.utc),
    le=datetime(9999, 12, 30, 23, 59, 59, tzinfo=timezone.utc))
Canal = Unicode(max_len=30)
Descripcion = Unicode(max_len=100)
MensajeTicket = Unicode(max_len=40)
MensajePantalla = Unicode(max_len=15)
CodigoRespuesta = Integer32(values=[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])
EstadoPago = Unicode(values=["APLICADO", "OBSERVADO", "ANULADO"])
MensajeEco = Unicode(max_len=100)
MotivoAnulacion = Unicode(max_len=100)
Origen = Unicode(values=["BASE", "ALTA", "ERP"])


class _Message(ComplexModel):
    __namespace__ = NAMESPACE


class Vencimiento(_Message):
    _type_info = [
        ("fecha", required(Date)),
        ("importe", required(Importe)),
    ]


Vencimientos = required(Array(required(Vencimiento).customize(max_occurs=3),
                              member_name="vencimiento", type_name="Vencimientos"))


class Factura(_Message):
    _type_info = [
        ("idFactura", required(IdFactura)),
        ("idCliente", required(IdCliente)),
        ("moneda", required(Moneda)),
        ("descripcion", required(Descripcion)),
        ("vencimientos", Vencimientos),
        ("importeAPagar", required(Importe)),
        ("origen", required(Origen)),
    ]


Facturas = required(Array(optional(Factura), member_name="factura", type_name="Facturas"))


class ConsultarDeudaSolicitud(_Message):
    _type_info = [
        ("idEmpresa", required(IdEmpresa)),
        ("idCliente", required(IdCliente)),
        ("idFactura", optional(IdFactura)),
    ]


class ConsultarDeudaRespuesta(_Message):
    _type_info = [
        ("codigoRespuesta", required(CodigoRespuesta)),
        ("descripcion", required(Descripcion)),
        ("idConsulta", required(IdConsulta)),
        ("facturas", Facturas),
    ]


class InformarPagoSolicitud(_Message):
    _type_info = [
        ("idEmpresa", required(IdEmpresa)),
        ("idOperacion", required(IdOperacion)),
        ("idCliente", required(IdCliente)),
        ("idFactura", required(IdFactura)),
        ("importe", required(Importe)),
        ("moneda", required(Moneda)),
        ("fechaPago", required(FechaHoraConZona)),
        ("canal", optional(Canal)),
        ("idConsulta", optional(IdConsulta)),
    ]


class InformarPagoRespuesta(_Message):
    _type_info = [
        ("codigoRespuesta", required(CodigoRespuesta)),
        ("descripcion", required(Descripcion)),
        ("idRecibo", required(IdRecibo)),
    ]


class AltaFacturaSolicitud(_Message):
    _type_info = [
        ("idEmpresa", required(IdEmpresa)),
        ("idCliente", required(IdCliente)),
        ("idFactura", required(IdFactura)),
        ("moneda", required(Moneda)),
        ("vencimientos", Vencimientos),
        ("descripcion", optional(Descripcion)),
        ("mensajeTicket", optional(MensajeTicket)),
        ("mensajePantalla", optional(MensajePantalla)),
    ]


class AltaFacturaRespuesta(_Message):
    _type_info = [
        ("codigoRespuesta", required(CodigoRespuesta)),
        ("descripcion", required(Descripcion)),
    ]


class AnularPagoSolicitud(_Message):
    _type_info = [
        ("idEmpresa", required(IdEmpresa)),
        ("idOperacion", required(IdOperacion)),
        ("idCliente", required(IdCliente)),
        ("idFactura", required(IdFactura)),
        ("importe", required(Importe)),
        ("moneda", required(Moneda)),
        ("fechaAnulacion", required(FechaHoraConZona)),
        ("motivo", optional(MotivoAnulacion)),
    ]


class AnularPagoRespuesta(_Message):
    _type_info = [
        ("codigoRespuesta", required(CodigoRespuesta)),
        ("descripcion", required(Descripcion)),
        ("idAnulacion", optional(IdAnulacion)),
    ]


class ConsultarPagoSolicitud(_Message):
    _type_info = [
        ("idEmpresa", required(IdEmpresa)),
        ("idOperacion", required(IdOperacion)),
    ]


class ConsultarPagoRespuesta(_Message):
    _type_info = [
        ("codigoRespuesta", required(CodigoRespuesta)),
        ("descripcion", required(Descripcion)),
        ("estado", optional(EstadoPago)),
        ("codigoRespuestaAviso", optional(CodigoRespuesta)),
        ("idRecibo", optional(IdRecibo)),
        ("importe", optional(Importe)),
        ("moneda", optional(Moneda)),
        ("fechaPago", optional(FechaHoraConZona)),
    ]


class EcoSolicitud(_Message):
    _type_info = [
        ("mensaje", optional(MensajeEco)),
    ]


class EcoRespuesta(_Message):
    _type_info = [
        ("mensaje", optional(MensajeEco)),
        ("fechaHora", required(FechaHoraConZona)),
    ]
