"""The compiled codecs read and write what spyne's generic code does (issue 20).

Messages are generated from spyne's own models -- every operation's request and
response, every optional member present and absent, arrays from empty to full,
values at their facets' edges and in the lexical forms XSD allows (a date with a
zone, a decimal with a sign and leading zeros, an empty string) -- and each one is

* read by spyne's generic ``from_element`` and by the compiled reader: the same
  values, of the same types (a Decimal's digits and exponent, a datetime's
  offset included);
* written back from those values by spyne's ``to_parent`` and by the compiled
  writer: the same canonical XML (C14N);
* run through the protocol's whole ``deserialize``/``serialize`` with the codecs
  on and off: the same values, the same envelope.

A mutated model (members reordered, a type changed, an optional member made
required) compiled against spyne's original must make these comparisons fail:
the test can tell a codec that does not follow its model.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from spyne import ComplexModel, MethodContext, Unicode
from spyne.model import ComplexModelBase
from spyne.model.complex import Array
from spyne.model.primitive import Date, DateTime, Integer
from spyne.model.primitive import Decimal as SpyneDecimal
from spyne.server import ServerBase

from adapter.soap import codec
from adapter.soap import models as wire
from adapter.soap.dispatch import ContractSoap11
from adapter.soap.service import spyne_application

SETTINGS = dict(deadline=None, database=None, derandomize=True, max_examples=60,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

APP = spyne_application(billing=None)
IN, OUT = APP.in_protocol, APP.out_protocol
MESSAGES = sorted({model for descriptors in APP.interface.service_method_map.values()
                   for descriptor in descriptors
                   for model in (descriptor.in_message, descriptor.out_message)},
                  key=lambda model: model.get_type_name())
MODEL = {model.get_type_name(): model for model in MESSAGES}  # as the service declares them


def context() -> MethodContext:
    return MethodContext(ServerBase(APP), MethodContext.SERVER)


# -- messages generated from the models ---------------------------------------------

def _xml_text(text: str) -> bool:
    return all(ch in "\t\n\r" or "\x20" <= ch <= "\ud7ff" or "\ue000" <= ch <= "\ufffd"
               or ch > "\uffff" for ch in text)


def _bounded(limit):
    return None if limit is None or limit == Decimal("Infinity") else int(limit)


def _unicode_texts(cls):
    attrs = cls.Attributes
    if attrs.values:
        return st.sampled_from(sorted(attrs.values))
    low, high = attrs.min_len or 0, _bounded(attrs.max_len)
    if attrs.pattern:
        texts = st.from_regex(attrs.pattern, fullmatch=True)
    else:
        texts = st.text(max_size=high if high is not None else 40)
    return texts.filter(lambda text: _xml_text(text) and "\r" not in text and low <= len(text)
                        and (high is None or len(text) <= high))


def _decimal_texts(cls):
    attrs = cls.Attributes
    places = attrs.fraction_digits
    low = Decimal(attrs.ge) if attrs.ge is not None else Decimal("-1e12")
    high = Decimal(attrs.le) if attrs.le is not None else Decimal("1e12")
    values = st.one_of(st.sampled_from([low, high, Decimal("0")]),
                       st.decimals(min_value=low, max_value=high, places=places,
                                   allow_nan=False, allow_infinity=False))
    lexical = st.sampled_from(["{}", "+{}", "000{}", "{}0"])  # forms XSD reads alike
    return st.builds(lambda value, form: form.format(value) if "." in str(value) or
                     form != "{}0" else str(value), values, lexical)


def _integer_texts(cls):
    values = cls.Attributes.values
    if values:
        return st.sampled_from(sorted(values)).map(str)
    return st.integers(-2**31, 2**31 - 1).map(str)


_OFFSETS = [timedelta(0), timedelta(hours=-3), timedelta(hours=-3, minutes=-30),
            timedelta(minutes=-30), timedelta(hours=14), timedelta(hours=-12),
            timedelta(hours=5, minutes=45)]


def _date_texts(cls):
    zones = st.sampled_from(["", "Z", "-03:00", "+14:00"])
    days = st.one_of(st.sampled_from([date(1, 1, 1), date(9999, 12, 31), date(2024, 2, 29)]),
                     st.dates())
    return st.builds(lambda day, zone: day.isoformat() + zone, days, zones)


def _datetime_texts(cls):
    attrs = cls.Attributes
    low = attrs.ge.replace(tzinfo=None) + timedelta(days=1)
    high = attrs.le.replace(tzinfo=None) - timedelta(days=1)
    instants = st.one_of(st.sampled_from([low, high]),
                         st.datetimes(min_value=low, max_value=high))
    zones = st.sampled_from(_OFFSETS)
    forms = st.sampled_from(["auto", "milliseconds", "microseconds", "seconds"])

    def text(instant, offset, form, zulu):
        written = instant.replace(tzinfo=timezone(offset)).isoformat(timespec=form)
        return written.replace("+00:00", "Z") if zulu and not offset else written

    return st.builds(text, instants, zones, forms, st.booleans())


def simple_texts(cls):
    for kind, texts in ((Unicode, _unicode_texts), (Integer, _integer_texts),
                        (SpyneDecimal, _decimal_texts), (Date, _date_texts),
                        (DateTime, _datetime_texts)):
        if issubclass(cls, kind):
            return texts(cls)
    raise AssertionError(f"no strategy for {cls}")


def tree(cls, tag: str):
    """Elements of model ``cls`` as (tag, text-or-children) trees."""
    if issubclass(cls, Array):
        ((key, member),) = cls._type_info.items()
        high = member.Attributes.max_occurs
        high = 3 if high == Decimal("Infinity") or high > 3 else int(high)
        member_tag = f"{{{cls.get_namespace()}}}{member.Attributes.sub_name or key}"
        return st.lists(tree(member, member_tag), min_size=member.Attributes.min_occurs,
                        max_size=high).map(lambda items: (tag, items))
    if issubclass(cls, ComplexModelBase):
        parts = []
        for key, member in cls._type_info.items():
            member_tag = f"{{{cls.get_namespace()}}}{member.Attributes.sub_name or key}"
            one = tree(member, member_tag).map(lambda node: [node])
            parts.append(one if member.Attributes.min_occurs else
                         st.one_of(st.just([]), one))
        return st.tuples(*parts).map(lambda lists: (tag, [n for nodes in lists for n in nodes]))
    return simple_texts(cls).map(lambda text: (tag, text))


def build(node) -> etree._Element:
    tag, content = node
    element = etree.Element(tag, nsmap={"p": wire.NAMESPACE})
    if isinstance(content, list):
        element.extend(build(child) for child in content)
    else:
        element.text = content
    return element


def messages(model=None):
    models = st.sampled_from(MESSAGES) if model is None else st.just(model)
    return models.flatmap(lambda cls: tree(cls, codec.message_tag(IN, cls)).map(
        lambda node: (cls, build(node))))


# -- comparing ------------------------------------------------------------------------

def differences(a, b, where: str = "") -> list[str]:
    """Where two read values differ, type and exact form included."""
    if isinstance(a, ComplexModelBase) or isinstance(b, ComplexModelBase):
        if type(a).__name__ != type(b).__name__:
            return [f"{where}: {type(a).__name__} != {type(b).__name__}"]
        found = []
        for key in type(a).get_flat_type_info(type(a)):
            found += differences(getattr(a, key, None), getattr(b, key, None), f"{where}.{key}")
        return found
    if isinstance(a, list) or isinstance(b, list):
        if not (isinstance(a, list) and isinstance(b, list)) or len(a) != len(b):
            return [f"{where}: {a!r} != {b!r}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{where}[{i}]")]
    same = type(a) is type(b) and a == b
    if same and isinstance(a, Decimal):
        same = a.as_tuple() == b.as_tuple()
    if same and isinstance(a, datetime):
        same = a.utcoffset() == b.utcoffset() and a.replace(tzinfo=None) == b.replace(tzinfo=None)
    return [] if same else [f"{where}: {a!r} != {b!r}"]


def canonical(element: etree._Element) -> bytes:
    return etree.tostring(element, method="c14n")


def read_both(cls, element: etree._Element, reader=None):
    """What spyne's generic reader and the compiled one make of ``element``: the two
    values, or the error both raised (a value spyne refuses, as a decimal longer than
    its limit, must be refused alike)."""
    ctx = context()
    reader = reader or IN.readers[cls]
    try:
        generic = IN.from_element(ctx, cls, element)
    except Exception as error:
        with pytest.raises(type(error)) as raised:
            reader(ctx, element)
        assert str(raised.value) == str(error)
        return None, None
    return generic, reader(ctx, element)


def generic_write(cls, value) -> bytes:
    parent = etree.Element("parent")
    tag = codec.message_tag(OUT, cls)
    OUT.to_parent(context(), cls, value, parent, etree.QName(tag).namespace,
                  etree.QName(tag).localname)
    return canonical(parent)


def compiled_write(cls, value, writer=None) -> bytes:
    parent = etree.Element("parent")
    write, tag = (writer, codec.message_tag(OUT, cls)) if writer else OUT.writers[cls]
    write(parent, value, tag)
    return canonical(parent)


# -- the proof ----------------------------------------------------------------------------

def test_every_message_of_the_service_is_compiled():
    assert len(MESSAGES) == 2 * len(APP.interface.service_method_map)
    for protocol in (IN, OUT):
        assert protocol.not_compiled == {}
        assert set(protocol.readers) == set(MESSAGES) == set(protocol.writers)


@pytest.mark.parametrize("model", MESSAGES, ids=lambda model: model.get_type_name())
@settings(**SETTINGS)
@given(data=st.data())
def test_compiled_codec_reads_and_writes_as_spyne_does(model, data):
    cls, element = data.draw(messages(model))
    generic, compiled = read_both(cls, element)
    assert differences(generic, compiled) == []
    if generic is not None:
        assert compiled_write(cls, generic) == generic_write(cls, generic)


def test_a_value_spyne_writes_as_nil_is_written_so():
    # a required member left None (a bug of the service) is written xsi:nil, as spyne does:
    # the response check then refuses it, whichever wrote it
    model = MODEL["InformarPagoRespuesta"]
    answer = wire.InformarPagoRespuesta(codigoRespuesta=0, descripcion="OK", idRecibo=None)
    assert b"nil" in compiled_write(model, answer)
    assert compiled_write(model, answer) == generic_write(model, answer)


def test_an_xsi_type_is_read_by_spyne_itself():
    element = build(("{%s}AltaFactura" % wire.NAMESPACE, [
        ("{%s}idEmpresa" % wire.NAMESPACE, "1234"), ("{%s}idCliente" % wire.NAMESPACE, "C"),
        ("{%s}idFactura" % wire.NAMESPACE, "F"), ("{%s}moneda" % wire.NAMESPACE, "ARS"),
        ("{%s}vencimientos" % wire.NAMESPACE, [("{%s}vencimiento" % wire.NAMESPACE, [
            ("{%s}fecha" % wire.NAMESPACE, "2026-01-01"),
            ("{%s}importe" % wire.NAMESPACE, "10.00")])])]))
    entry = element[4][0]
    entry.set("{http://www.w3.org/2001/XMLSchema-instance}type", "p:Vencimiento")
    generic, compiled = read_both(MODEL["AltaFacturaSolicitud"], element)
    assert generic is not None and differences(generic, compiled) == []


@settings(**SETTINGS)
@given(data=st.data())
def test_the_protocol_runs_the_same_with_and_without_its_codecs(data):
    cls, element = data.draw(messages())
    generic = ContractSoap11(validator=None, compiled=False)
    generic.set_app(APP)  # an application of its own would publish twice; this one is bare
    descriptors = [descriptor for found in APP.interface.service_method_map.values()
                   for descriptor in found if cls in (descriptor.in_message,
                                                      descriptor.out_message)]
    (descriptor,) = descriptors
    results = []
    for protocol in (generic, IN):
        ctx = context()
        ctx.descriptor = descriptor
        if cls is descriptor.in_message:
            ctx.in_document = ctx.in_body_doc = element
            protocol.deserialize(ctx, message=protocol.REQUEST)
            results.append(ctx.in_object)
        else:
            ctx.out_object = [OUT.from_element(ctx, cls, element)]
            protocol.serialize(ctx, message=protocol.RESPONSE)
            results.append(canonical(ctx.out_document))
    if cls is descriptor.in_message:
        assert differences(*results) == []
    else:
        assert results[0] == results[1]


# -- the comparisons can fail --------------------------------------------------------------

def _mutant(cls, type_info) -> type:
    return type(cls.__name__, (ComplexModel,), {
        "__namespace__": cls.get_namespace(), "__type_name__": cls.get_type_name(),
        "_type_info": type_info})


def _reordered(cls):
    members = list(cls._type_info.items())
    return _mutant(cls, [members[1], members[0], *members[2:]])


def _retyped(cls):
    return _mutant(cls, [(key, wire.required(Unicode) if issubclass(member, SpyneDecimal)
                          else member) for key, member in cls._type_info.items()])


def _required(cls):
    return _mutant(cls, [(key, member.customize(min_occurs=1))
                         for key, member in cls._type_info.items()])


@pytest.mark.parametrize("mutate, model", [
    (_reordered, MODEL["InformarPagoSolicitud"]), (_retyped, MODEL["InformarPagoSolicitud"]),
    (_required, MODEL["InformarPagoSolicitud"]), (_reordered, MODEL["ConsultarDeudaRespuesta"]),
    (_required, MODEL["ConsultarPagoRespuesta"])], ids=lambda item: getattr(item, "__name__", ""))
def test_a_codec_compiled_from_a_mutated_model_is_caught(mutate, model):
    mutant = mutate(model)
    reader, writer = codec.reader_for(IN, mutant), codec.writer_for(OUT, mutant)
    caught = []

    @settings(**{**SETTINGS, "max_examples": 30})
    @given(data=st.data())
    def compare(data):
        cls, element = data.draw(messages(model))
        try:
            generic, read = read_both(cls, element, reader)
        except (AssertionError, pytest.fail.Exception):  # raised differently: caught
            caught.append(element)
            return
        if generic is None:
            return
        if differences(generic, read) or \
                compiled_write(cls, generic, writer) != generic_write(cls, generic):
            caught.append(element)

    compare()
    assert caught, f"{mutate.__name__} of {model.get_type_name()} went unnoticed"


def test_what_the_compiler_does_not_know_is_left_to_spyne():
    from spyne import XmlAttribute

    with_attribute = _mutant(MODEL["EcoSolicitud"], [("mensaje", XmlAttribute(Unicode))])
    with_default = _mutant(MODEL["EcoSolicitud"], [("mensaje", Unicode(default="hola"))])
    for model in (with_attribute, with_default):
        with pytest.raises(codec.NotCompilable):
            codec.writer_for(OUT, model)
    with pytest.raises(codec.NotCompilable):
        codec.reader_for(IN, with_attribute)
