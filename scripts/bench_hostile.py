#!/usr/bin/env python3
"""Benchmark: the CPU a hostile request costs, shape by shape, within max_request_bytes.

    .venv/bin/python scripts/bench_hostile.py [--repeat 7]

What it measures: the CPU time (``time.process_time()``, this process's user + system:
the gateway runs in-process, so no HTTP client or server shares the figure) of one
request through the service's WSGI app, with the product's default caps, on a SQLite
file in a temporary folder: the median and the worst of ``--repeat`` runs of each
shape, every shape filled to about ``max_request_bytes`` (64 KiB) where it can be:

* ``valid <Operation>``: a valid request of each operation (the floor);
* attributes on one element, at the cap (32, long values) and far over it (2,400);
* attributes over a document, at the cap (256) and over it;
* namespace declarations on one element, at the cap and over it;
* long text in a field (60 KiB in idCliente);
* many siblings (up to the 500 elements the cap allows, in the Header and in the Body entry);
* deep nesting (at the 32 levels the cap allows, and over it);
* JSON: a payment notice (valid), 60 KiB of text in a field, 20,000 array items,
  nesting 10,000 deep, 5,000 duplicate keys.

It prints one line per shape (bytes, the answer, median and worst CPU in ms) and the
worst of all. The aim (issue 25): no request of up to max_request_bytes costs more
than 20 ms of CPU. Run it on a quiet machine; the ratio to ``valid ConsultarDeuda`` is
the figure least moved by other load.
"""
from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from lxml import etree

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from support.soap import TNS, envelope as request_envelope  # noqa: E402 (the tests' builder)

LIMIT = 64 * 1024


def envelope(operation: str, fields: list, header: str = "", inside: str = "") -> bytes:
    """The tests' request envelope, with ``header`` as its Header's content and
    ``inside`` appended to the operation's element."""
    text = request_envelope(operation, fields).decode()
    if header:
        text = text.replace("<soap:Body>", f"<soap:Header>{header}</soap:Header><soap:Body>")
    if inside:
        text = text.replace(f"</p:{operation}>", f"{inside}</p:{operation}>")
    return text.encode()


QUERY = [("idEmpresa", "1234"), ("idCliente", "C1")]
PAYMENT = [("idEmpresa", "1234"), ("idOperacion", "OP-BENCH"), ("idCliente", "C1"),
           ("idFactura", "F-1"), ("importe", "10.00"), ("moneda", "ARS"),
           ("fechaPago", "2026-11-26T10:00:00-03:00")]
VALID = {
    "ConsultarDeuda": QUERY,
    "InformarPago": PAYMENT,
    "AnularPago": [("idEmpresa", "1234"), ("idOperacion", "OP-NONE"), ("idCliente", "C1"),
                   ("idFactura", "F-1"), ("importe", "10.00"), ("moneda", "ARS"),
                   ("fechaAnulacion", "2026-11-26T10:05:00-03:00")],
    "ConsultarPago": [("idEmpresa", "1234"), ("idOperacion", "OP-BENCH")],
    "AltaFactura": [("idEmpresa", "1234"), ("idCliente", "C9"), ("idFactura", "F-9"),
                    ("moneda", "ARS"), ("vencimientos", [("vencimiento", [
                        ("fecha", "2099-01-01"), ("importe", "10.00")])])],
    "Eco": [("mensaje", "hola")],
}


def with_attributes(count: int, value_size: int, prefix: str = "a") -> str:
    return " ".join(f'{prefix}{n}="{"x" * value_size}"' for n in range(count))


def soap_shapes() -> dict[str, bytes]:
    query = envelope("ConsultarDeuda", QUERY)
    shapes = {f"valid {name}": envelope(name, fields) for name, fields in VALID.items()}
    element = "<p:idCliente>"
    shapes["32 attributes on one element (the cap)"] = query.replace(
        element.encode(), f"<p:idCliente {with_attributes(32, 1900)}>".encode())
    shapes["2,400 attributes on one element"] = query.replace(
        element.encode(), f"<p:idCliente {with_attributes(2400, 16)}>".encode())
    # with the Envelope's two namespace declarations: 256, the document's cap
    spread = "".join(f"<x{n} {with_attributes(32 if n < 7 else 30, 230)}/>" for n in range(8))
    shapes["256 attributes over 9 elements (the cap)"] = envelope("ConsultarDeuda", QUERY,
                                                                  header=spread)
    shapes["2,400 attributes over 75 elements"] = envelope(
        "ConsultarDeuda", QUERY, header="".join(f"<x{n} {with_attributes(32, 16)}/>"
                                                for n in range(75)))
    shapes["32 namespace declarations on one element"] = query.replace(
        element.encode(), ("<p:idCliente " + " ".join(
            f'xmlns:n{n}="urn:{"x" * 1900}{n}"' for n in range(32)) + ">").encode())
    shapes["2,400 namespace declarations on one element"] = query.replace(
        element.encode(), ("<p:idCliente " + " ".join(
            f'xmlns:n{n}="urn:n{n}"' for n in range(2400)) + ">").encode())
    shapes["60 KiB of text in idCliente"] = envelope(
        "ConsultarDeuda", [("idEmpresa", "1234"), ("idCliente", "C" * 60000)])
    shapes["494 siblings in the Header (the cap)"] = envelope(
        "ConsultarDeuda", QUERY, header="".join(f"<x{n}>{'y' * 100}</x{n}>" for n in range(494)))
    shapes["495 siblings in the Body entry"] = envelope(
        "ConsultarDeuda", QUERY, inside="".join(f"<p:idCliente>C{n}</p:idCliente>"
                                                for n in range(495)))
    deep = "".join(f"<d{n}>" for n in range(29)) + "x" + "".join(
        f"</d{n}>" for n in reversed(range(29)))
    shapes["32 levels deep (the cap)"] = envelope("ConsultarDeuda", QUERY, header=deep)
    shapes["5,000 levels deep"] = envelope("ConsultarDeuda", QUERY, header=(
        "<d>" * 5000 + "</d>" * 5000))
    return {name: body for name, body in shapes.items()}


def json_shapes() -> dict[str, bytes]:
    notice = {"access_token": "t" * 20, "company_id": "1234", "customer_id": "C1",
              "invoice_id": "F-1", "currency": "ARS", "amount": "10.00",
              "operation_id": "OP-JSON-BENCH"}
    return {
        "JSON: valid payment_notify": json.dumps(notice).encode(),
        "JSON: 60 KiB of text in description": json.dumps(
            {**notice, "description": "x" * 60000}).encode(),
        "JSON: 20,000 array items": json.dumps({**notice, "amount": [1] * 20000}).encode(),
        "JSON: nested 10,000 deep": b'{"a":' * 10000 + b"1" + b"}" * 10000,
        "JSON: 5,000 duplicate keys": b"{" + b",".join(b'"a": 1' for _ in range(5000)) + b"}",
    }


def call(app, path: str, content_type: str, body: bytes) -> str:
    environ = {"PATH_INFO": path, "REQUEST_METHOD": "POST", "CONTENT_TYPE": content_type,
               "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body),
               "REMOTE_ADDR": "127.0.0.1", "wsgi.url_scheme": "http",
               "SERVER_NAME": "bench", "SERVER_PORT": "80"}
    status = {}
    answer = b"".join(app(environ, lambda line, headers: status.setdefault("line", line)))
    if b"<faultcode>" in answer:
        return answer.split(b"<faultcode>")[1].split(b"<")[0].decode()
    if path.startswith("/api/"):
        return f"{status['line'][:3]} {json.loads(answer)['code']}"
    code = etree.fromstring(answer).findtext(f".//{{{TNS}}}codigoRespuesta")
    return f"codigoRespuesta {code}" if code is not None else "ok"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    import logging
    logging.disable(logging.WARNING)  # the refusals' log lines are not the figure
    from adapter.app import make_wsgi_app
    from adapter.config import load_settings
    from adapter.storage.db import create_database_file, make_engine, upgrade_schema

    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/bench.sqlite3"
        engine = make_engine(url)
        create_database_file(engine)
        upgrade_schema(engine)
        engine.dispose()
        app = make_wsgi_app(load_settings(environ={"PMC_ADAPTER_DATABASE_URL": url}))
        rows = []
        cases = [("/soap", "text/xml; charset=utf-8", name, body)
                 for name, body in soap_shapes().items()]
        cases += [("/api/v1/payment_notify", "application/json", name, body)
                  for name, body in json_shapes().items()]
        for path, content_type, name, body in cases:
            if len(body) > LIMIT:
                raise SystemExit(f"{name}: {len(body)} bytes, over max_request_bytes")
            call(app, path, content_type, body)  # warm: compiled validators, caches
            times = []
            for _ in range(args.repeat):
                started = time.process_time()
                answer = call(app, path, content_type, body)
                times.append((time.process_time() - started) * 1000)
            rows.append((name, len(body), answer, statistics.median(times), max(times)))
    width = max(len(row[0]) for row in rows)
    print(f"{'shape':<{width}}  {'bytes':>6}  {'answer':<32} {'median ms':>9} {'worst ms':>9}")
    for name, size, answer, median, worst in rows:
        print(f"{name:<{width}}  {size:>6}  {answer:<32} {median:>9.2f} {worst:>9.2f}")
    worst = max(rows, key=lambda row: row[4])
    floor = next(row for row in rows if row[0] == "valid ConsultarDeuda")
    print(f"\nworst: {worst[0]}: {worst[4]:.2f} ms of CPU ({worst[4] / floor[3]:.1f}x a valid "
          f"ConsultarDeuda's median, {floor[3]:.2f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
