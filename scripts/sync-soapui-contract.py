#!/usr/bin/env python3
"""Copy the bundled contract (wsdl/pmc-adapter.wsdl, xsd/pmc-adapter.xsd) into the SoapUI
project's definition cache, after a contract change; tests/test_soapui.py checks they agree.

The project is edited as text, so that nothing else in it changes.
"""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ROOT / "tests" / "soapui" / "pmc-adapter-soapui-project.xml"
PARTS = {"http://schemas.xmlsoap.org/wsdl/": ROOT / "wsdl" / "pmc-adapter.wsdl",
         "http://www.w3.org/2001/XMLSchema": ROOT / "xsd" / "pmc-adapter.xsd"}
OPEN, CLOSE = "<con:content><![CDATA[", "]]></con:content>"


def main() -> None:
    text = PROJECT.read_text()
    for kind, source in PARTS.items():
        type_at = text.index(f"<con:type>{kind}</con:type>")
        end = text.rindex(CLOSE, 0, type_at)
        start = text.rindex(OPEN, 0, end) + len(OPEN)
        content = source.read_text().split("?>", 1)[1].strip()  # without the XML declaration
        text = text[:start] + content + text[end:]
    PROJECT.write_text(text)
    print(f"{PROJECT.relative_to(ROOT)}: contract cache updated")


if __name__ == "__main__":
    main()
