"""Readers and writers of the contract's messages, compiled from spyne's own models.

spyne reads and writes a message generically: for every element it looks the
member and its attributes up again, dispatches on the type twice, and builds
the tree through coroutines. The contract's messages are few and fixed, so at
start-up each one's model is walked once -- element names, order, occurrences,
the converter spyne uses for each simple type -- and turned into a reader and a
writer that do only what spyne would do for that message: the same Python
values, through spyne's own converters (the protocol's, ours included); the same
elements, in the same order, with the same text.

Nothing is written per operation: a model is compiled because it exists. A
model using what this compiler does not know (XML attributes, aliases,
defaults, sub-protocols, a polymorphic or soft-validating protocol...) is not
compiled, and spyne's generic code reads and writes it, as before.
``tests/test_codec.py`` holds the proof: generated messages of every operation
read and written both ways, compared value for value and as canonical XML.
"""
from __future__ import annotations

from typing import Any, Callable

from lxml import etree
from spyne.model import ComplexModelBase
from spyne.const.xml import DEFAULT_NS
from spyne.model.complex import Array, XmlAttribute, XmlData
from spyne.protocol.xml import XmlDocument

XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"

Reader = Callable[[Any, etree._Element], Any]  # (method context, element)
Writer = Callable[[etree._Element, Any, str], None]  # (parent, value, tag)


class NotCompilable(Exception):
    """The model uses something this compiler does not reproduce: spyne keeps it."""


def _attributes(protocol: XmlDocument, cls) -> Any:
    attrs = protocol.get_cls_attrs(cls)
    unsupported = [name for name, bad in (
        ("a default", getattr(attrs, "default", None) is not None),
        ("exc", getattr(attrs, "exc", False)),
        ("read_only", getattr(attrs, "read_only", False)),
        ("a sub-protocol", getattr(attrs, "prot", None) is not None),
    ) if bad]
    if unsupported:
        raise NotCompilable(f"{cls.__name__} has {', '.join(unsupported)}")
    return attrs


def _fields(cls) -> list[tuple[str, Any]]:
    """The members in the order spyne writes them: the base class's first."""
    base = getattr(cls, "__extends__", None)
    inherited = [] if base is None else _fields(base)
    return inherited + list(cls._type_info.items())


def _member_tag(cls, key: str, member) -> str:
    namespace = member.Attributes.sub_ns or cls.get_namespace()
    if namespace is DEFAULT_NS:
        raise NotCompilable(f"{cls.__name__}.{key} is in the interface's default namespace")
    name = member.Attributes.sub_name or key
    return name if namespace is None else f"{{{namespace}}}{name}"


def message_tag(protocol: XmlDocument, cls) -> str:
    """The element a bare message of model ``cls`` is written as (spyne's rule)."""
    namespace = cls.Attributes.sub_ns or cls.get_namespace()
    if namespace is DEFAULT_NS:
        namespace = protocol.app.interface.get_tns()
    return f"{{{namespace}}}{cls.Attributes.sub_name or cls.get_type_name()}"


# -- reading ------------------------------------------------------------------

def _simple_reader(protocol: XmlDocument, cls) -> Reader:
    if issubclass(cls, (XmlAttribute, XmlData)):
        raise NotCompilable(f"{cls.__name__} is an XML attribute or an element's text")
    handler = protocol.deserialization_handlers[cls]
    if handler == protocol.unicode_from_element:
        empty = ""  # spyne reads an empty string element as ''
    elif handler == protocol.base_from_element:
        empty = None
    else:
        raise NotCompilable(f"{cls.__name__} is read by {handler.__name__}")
    convert = protocol._from_unicode_handlers[cls]
    empty_is_none = protocol.get_cls_attrs(cls).empty_is_none

    def read(ctx, element: etree._Element):
        text = element.text
        if text is None:
            text = empty
            if text is None:
                return None
        if empty_is_none and text == "":
            return None
        return convert(cls, text)

    return read


def _array_reader(protocol: XmlDocument, cls) -> Reader:
    ((_key, member),) = cls._type_info.items()
    read_member = reader_for(protocol, member)

    def read(ctx, element: etree._Element):
        return [read_member(ctx, child) for child in element]

    return read


def _complex_reader(protocol: XmlDocument, cls) -> Reader:
    if cls._type_info_alt:
        raise NotCompilable(f"{cls.__name__} has member aliases")
    attrs = protocol.get_cls_attrs(cls)
    if attrs._xml_tag_body_as is not None:
        raise NotCompilable(f"{cls.__name__} reads its element's text")
    members = {}  # local name -> (attribute, reader, repeated)
    for key, member in cls.get_flat_type_info(cls).items():
        member_attrs = _attributes(protocol, member)
        members[key] = (key, reader_for(protocol, member), member_attrs.max_occurs > 1)
    make = cls.get_deserialization_instance

    def read(ctx, element: etree._Element):
        instance = make(ctx)
        for child in element:
            tag = child.tag
            if not isinstance(tag, str):  # a comment or processing instruction
                continue
            found = members.get(tag.rpartition("}")[2])
            if found is None:  # spyne skips what its model does not name
                continue
            key, read_member, repeated = found
            if repeated:
                values = getattr(instance, key, None)
                if values is None:
                    values = []
                values.append(read_member(ctx, child))
                setattr(instance, key, values)
            else:
                setattr(instance, key, read_member(ctx, child))
        return instance

    return read


def reader_for(protocol: XmlDocument, cls) -> Reader:
    """How ``protocol`` reads an element of model ``cls``, compiled."""
    if protocol.validator is protocol.SOFT_VALIDATION:
        raise NotCompilable("soft validation checks while reading")
    if issubclass(cls, Array):
        content = _array_reader(protocol, cls)
    elif issubclass(cls, ComplexModelBase):
        content = _complex_reader(protocol, cls)
    else:
        content = _simple_reader(protocol, cls)
    xsi_type = protocol.parse_xsi_type

    def read(ctx, element: etree._Element):
        # what spyne's from_element does first, for every model
        if element.get(XSI_NIL):
            return None
        if xsi_type and element.get(XSI_TYPE) is not None:
            return protocol.from_element(ctx, cls, element)  # spyne's, for the type named
        return content(ctx, element)

    return read


# -- writing ------------------------------------------------------------------

def _simple_writer(protocol: XmlDocument, cls) -> Writer:
    convert = protocol._to_unicode_handlers[cls]

    def write(parent: etree._Element, value, tag: str) -> None:
        etree.SubElement(parent, tag).text = convert(cls, value)

    return write


def _complex_writer(protocol: XmlDocument, cls) -> Writer:
    members = []
    for key, member in _fields(cls):
        member_attrs = _attributes(protocol, member)
        members.append((key, _member_tag(cls, key, member), writer_for(protocol, member),
                        member_attrs.max_occurs > 1, member_attrs.min_occurs > 0))
    serialization_instance = cls.get_serialization_instance

    def write(parent: etree._Element, value, tag: str) -> None:
        element = etree.SubElement(parent, tag)
        value = serialization_instance(value)  # an Array's list becomes its holder
        for key, member_tag, write_member, repeated, required in members:
            member_value = getattr(value, key, None)
            if member_value is not None and repeated:
                for item in member_value:
                    write_member(element, item, member_tag)
            elif member_value is not None or required:
                write_member(element, member_value, member_tag)

    return write


def writer_for(protocol: XmlDocument, cls) -> Writer:
    """How ``protocol`` writes a value of model ``cls`` into a parent, compiled."""
    if protocol.polymorphic:
        raise NotCompilable("a polymorphic protocol writes xsi:type")
    complex_ = issubclass(cls, ComplexModelBase)
    handler = protocol.serialization_handlers[cls]
    if handler != (protocol.complex_to_parent if complex_ else protocol.modelbase_to_parent):
        raise NotCompilable(f"{cls.__name__} is written by {handler.__name__}")
    _attributes(protocol, cls)
    content = (_complex_writer if complex_ else _simple_writer)(protocol, cls)

    def write(parent: etree._Element, value, tag: str) -> None:
        if value is None:  # as spyne's null_to_parent: the element, marked nil
            etree.SubElement(parent, tag, {XSI_NIL: "true"})
        else:
            content(parent, value, tag)

    return write
