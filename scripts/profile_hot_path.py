#!/usr/bin/env python3
"""Where one request's time goes, in-process: the WSGI app called directly, one thread.

    .venv/bin/python scripts/profile_hot_path.py [--requests 3000] [--database-url URL]
                                                 [--profile] [--top 25]

Builds the service as ``pmc-adapter serve`` does (SQLite in a temporary folder unless
--database-url), seeds invoices through AltaFactura, then calls ConsultarDeuda and
InformarPago --requests times each and prints the mean time per request (wall clock,
one thread, no HTTP) and, for both operations, the share of that time each step of
the SOAP path took (the gateway's parse and checks, spyne's reading of the request,
the use case, spyne's writing of the answer, the answer's check). With --profile it
prints cProfile's top functions by cumulative time too. A figure from this script is
CPU on one core; ``bench_wrk.py`` is the one for throughput under load.
"""
from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from support.soap import envelope  # noqa: E402  (the tests' own envelope builder)

BILLER = "1234"


def call(app, body: bytes) -> bytes:
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/soap", "CONTENT_TYPE": "text/xml",
               "CONTENT_LENGTH": str(len(body)), "wsgi.input": BytesIO(body),
               "REMOTE_ADDR": "127.0.0.1", "SERVER_NAME": "localhost", "SERVER_PORT": "80",
               "wsgi.url_scheme": "http"}
    status = []
    out = b"".join(app(environ, lambda s, h: status.append(s)))
    if not status[0].startswith("200"):
        raise SystemExit(f"unexpected answer {status[0]}: {out[:400]!r}")
    return out


class Steps:
    """Wall time spent in named methods, wrapped in place for the run."""

    def __init__(self):
        self.seconds = defaultdict(float)

    def wrap(self, owner, name: str, label: str) -> None:
        original = getattr(owner, name)
        seconds = self.seconds

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                seconds[label] += time.perf_counter() - started

        setattr(owner, name, timed)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--database-url")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()

    folder = tempfile.mkdtemp(prefix="pmc-profile-")
    os.environ["PMC_ADAPTER_DATABASE_URL"] = args.database_url or f"sqlite:///{folder}/p.db"
    os.environ.setdefault("PMC_ADAPTER_BILLERS", BILLER)
    from adapter.app import make_wsgi_app
    from adapter.config import load_settings
    from adapter.storage.db import make_engine, upgrade_schema

    settings = load_settings()
    upgrade_schema(make_engine(settings.database_url))
    channels = make_wsgi_app(settings)
    app = channels.soap
    due = (date.today() + timedelta(days=20)).isoformat()
    customers = args.requests  # one invoice a payment, a debt query over them
    for number in range(customers):
        call(app, envelope("AltaFactura", [
            ("idEmpresa", BILLER), ("idCliente", f"C{number}"), ("idFactura", f"F{number}"),
            ("moneda", "ARS"),
            ("vencimientos", [("vencimiento", [("fecha", due), ("importe", "1500.00")])])]))
    paid_at = (datetime.now(timezone.utc) - timedelta(minutes=5)).isoformat(timespec="seconds")
    debt = [envelope("ConsultarDeuda", [("idEmpresa", BILLER), ("idCliente", f"C{n % 100}")])
            for n in range(args.requests)]
    payment = [envelope("InformarPago", [
        ("idEmpresa", BILLER), ("idOperacion", uuid.uuid4().hex), ("idCliente", f"C{n}"),
        ("idFactura", f"F{n}"), ("importe", "1500.00"), ("moneda", "ARS"),
        ("fechaPago", paid_at)]) for n in range(args.requests)]

    from adapter.soap import dispatch, envelope as envelope_module, gateway
    steps = Steps()
    steps.wrap(envelope_module, "parse", "parse (limits)")
    steps.wrap(gateway.Gateway, "_admit", "admit (caller, XSD)")
    steps.wrap(dispatch.SpyneDispatcher, "read", "read the request")
    steps.wrap(dispatch.SpyneDispatcher, "run", "use case")
    steps.wrap(dispatch.SpyneDispatcher, "write", "write the answer")
    steps.wrap(gateway.Gateway, "_check_response", "check the answer (XSD)")
    steps.wrap(dispatch.SpyneDispatcher, "to_bytes", "answer to bytes")
    steps.wrap(gateway.Gateway, "_log_request", "log line")

    for body in debt[:50]:  # warm up (compiled validators, caches), before any timing
        call(app, body)
    for name, bodies in (("ConsultarDeuda", debt), ("InformarPago", payment)):
        steps.seconds.clear()
        profile = cProfile.Profile() if args.profile else None
        started = time.perf_counter()
        if profile:
            profile.enable()
        for body in bodies:
            call(app, body)
        if profile:
            profile.disable()
        total = time.perf_counter() - started
        print(f"{name}: {total / len(bodies) * 1e3:.3f} ms per request "
              f"({len(bodies)} requests, one thread, in-process)")
        for label, seconds in steps.seconds.items():
            print(f"  {label:<26} {seconds / len(bodies) * 1e3:7.3f} ms  "
                  f"{seconds / total * 100:5.1f} %")
        if profile:
            pstats.Stats(profile).sort_stats("cumulative").print_stats(args.top)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
