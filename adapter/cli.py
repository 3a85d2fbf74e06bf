"""``pmc-adapter``: the command line.

``serve`` brings the database schema up to date and serves the SOAP service
with gunicorn, forwarding payments to the ERP from every worker (one machine
needs one command). ``worker`` forwards without serving; ``forwards`` shows
the outbox; ``import-fac`` loads a billing base file; ``erp-sim`` serves the
bundled reference legacy ERP.
"""
from __future__ import annotations

import argparse
import json
import logging
import signal
import sys

from adapter import __version__
from adapter.config import Settings, load_settings
from adapter.errors import ConfigurationError, RequestTimeout
from adapter.storage.db import make_engine, upgrade_schema

log = logging.getLogger("adapter")


def _serve(settings: Settings, args) -> int:
    from adapter.app import erp_configured, guard_for, make_wsgi_app
    from adapter.erp.connector import ErpDirectory
    from adapter.gunicorn_app import serve_wsgi
    from adapter.soap.faults import fault_envelope

    ErpDirectory(settings).check()
    guard_for(settings)  # a bad caller list stops the start, not the first request
    engine = make_engine(settings.database_url)
    upgrade_schema(engine)
    engine.dispose()  # workers open their own connections after the fork
    if not settings.empresas:
        log.warning("PMC_ADAPTER_EMPRESAS is not set: serving every biller number")
    if not settings.callers:
        log.warning("no callers configured (PMC_ADAPTER_CALLERS): requests are not "
                    "authenticated; do this only behind a gateway that authenticates PMC")
    if not settings.allowed_networks:
        log.warning("PMC_ADAPTER_ALLOWED_NETWORKS is not set: any address may call")
    if not erp_configured(settings):
        log.info("no ERP configured: answering from the billing base only")
    tls = (settings.tls_cert, settings.tls_key) if settings.tls_cert else None
    serve_wsgi(lambda: make_wsgi_app(settings, forward=True), bind=settings.bind,
               workers=settings.workers, threads=settings.threads,
               log_level=settings.log_level, tls=tls, client_ca=settings.tls_client_ca,
               request_timeout=settings.request_timeout,
               max_request_bytes=settings.max_request_bytes,
               timeout_response=fault_envelope(RequestTimeout(
                   f"the request did not arrive within {settings.request_timeout:g} s")))
    return 0


def _worker(settings: Settings, args) -> int:
    from adapter.app import build

    parts = build(settings)
    upgrade_schema(parts.storage.engine)
    parts.erps.check()
    if parts.forwarder is None:
        print("pmc-adapter worker: no ERP is configured, nothing to forward", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: parts.forwarder.stop(timeout=0))
    signal.signal(signal.SIGINT, lambda *_: parts.forwarder.stop(timeout=0))
    parts.forwarder.run_forever(settings.forward_poll)
    return 0


def _forwards(settings: Settings, args) -> int:
    from adapter.storage.uow import Storage

    status = "pending" if args.status == "failing" else args.status
    with Storage(make_engine(settings.database_url)).unit_of_work() as uow:
        rows = uow.forwards.listing(status, limit=args.limit)
    if args.status == "failing":
        rows = [row for row in rows if row.attempts > 0]
    if args.json:
        print(json.dumps([{**row.__dict__, **{key: value.isoformat() for key, value in
                                              row.__dict__.items() if hasattr(value, "isoformat")}}
                          for row in rows], indent=2))
        return 0
    print(f"{'idOperacion':<36} {'empresa':<7} {'kind':<8} {'state':<9} {'tries':>5}  "
          f"{'next try / delivered (UTC)':<26} detail")
    for row in rows:
        state = "failing" if row.status == "pending" and row.attempts else row.status
        when = row.delivered_at if row.status == "delivered" else row.next_attempt_at
        detail = row.erp_reference if row.status == "delivered" else (row.last_error or "")
        print(f"{row.operation_id:<36} {row.biller_id:<7} {row.kind:<8} {state:<9} "
              f"{row.attempts:>5}  "
              f"{when:%Y-%m-%d %H:%M:%S}{'':<7} {detail}")
    return 0


def _import_fac(settings: Settings, args) -> int:
    from adapter.app import build
    from adapter.fac import InvalidFacFile, parse_fac

    try:
        with open(args.file, encoding="latin-1") as handle:
            fac = parse_fac(handle.read())
    except OSError as error:
        print(f"pmc-adapter import-fac: {error}", file=sys.stderr)
        return 2
    except InvalidFacFile as error:
        print(f"pmc-adapter import-fac: {args.file} refused, nothing imported: {error}",
              file=sys.stderr)
        return 2
    if not settings.serves(fac.biller_id):
        print(f"pmc-adapter import-fac: biller {fac.biller_id} is not served here "
              "(PMC_ADAPTER_EMPRESAS)", file=sys.stderr)
        return 2
    for rejected in fac.rejected:
        print(f"rejected line {rejected.line}: {rejected.reason}")
    parts = build(settings)
    upgrade_schema(parts.storage.engine)
    counts = parts.billing.import_billing_base(list(fac.invoices))
    print(f"biller {fac.biller_id}, file of {fac.day:%Y-%m-%d}: "
          + ", ".join(f"{count} {what}" for what, count in counts.items())
          + f", {len(fac.rejected)} rejected")
    return 1 if fac.rejected else 0


def _upgrade(settings: Settings, args) -> int:
    applied = upgrade_schema(make_engine(settings.database_url))
    print(f"schema up to date; migrations applied: {', '.join(applied) or 'none'}")
    return 0


def _erp_sim(_settings: None, args) -> int:
    from adapter import erpsim

    try:
        erpsim.load_items(args.invoices)
    except (OSError, ValueError) as error:
        print(f"pmc-adapter erp-sim: cannot load invoices: {error}", file=sys.stderr)
        return 2
    erpsim.serve(args.bind, args.invoices, latency_ms=args.latency_ms,
                 fail_rate=args.fail_rate, credentials=args.require_auth, state_file=args.state)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pmc-adapter", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--config", help="TOML config file (default: $PMC_ADAPTER_CONFIG)")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="upgrade the schema, serve SOAP, forward payments")
    serve.add_argument("--bind", help="HOST:PORT (default: $PMC_ADAPTER_BIND or 127.0.0.1:8080)")
    serve.add_argument("--workers", type=int, help="gunicorn workers (default: 2)")
    serve.add_argument("--threads", type=int, help="threads per worker (default: 16)")
    serve.set_defaults(run=_serve)

    worker = commands.add_parser("worker", help="forward stored payments to the ERP (no HTTP)")
    worker.set_defaults(run=_worker)

    forwards = commands.add_parser("forwards",
                                   help="list payment and reversal forwards to the ERP")
    forwards.add_argument("--status", choices=["pending", "failing", "delivered", "rejected"])
    forwards.add_argument("--limit", type=int, default=100)
    forwards.add_argument("--json", action="store_true")
    forwards.set_defaults(run=_forwards)

    fac = commands.add_parser("import-fac", help="load a billing base file (FACnnnn.DDMMAA)")
    fac.add_argument("file")
    fac.set_defaults(run=_import_fac)

    upgrade = commands.add_parser("upgrade-schema", help="apply database migrations and exit")
    upgrade.set_defaults(run=_upgrade)

    sim = commands.add_parser("erp-sim", help="serve the bundled reference legacy ERP at /erp")
    sim.add_argument("--bind", default="127.0.0.1:8090")
    sim.add_argument("--invoices", required=True, help="CSV of the ERP's invoices")
    sim.add_argument("--latency-ms", type=int, default=0)
    sim.add_argument("--fail-rate", type=float, default=0.0)
    sim.add_argument("--require-auth", metavar="USER:PASSWORD",
                     help="accept only calls with these credentials (HTTP basic or WSSE)")
    sim.add_argument("--state", help="JSON file keeping received payments across restarts")
    sim.set_defaults(run=_erp_sim)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s [%(process)d] [%(levelname)s] %(name)s: %(message)s")
    if args.command == "erp-sim":  # a stand-in for another system: not the adapter's settings
        return args.run(None, args)
    try:
        settings = load_settings(args.config)
        overrides = {key: getattr(args, key, None) for key in ("bind", "workers", "threads")}
        settings = Settings(**{**settings.__dict__,
                               **{k: v for k, v in overrides.items() if v is not None}})
        return args.run(settings, args)
    except ConfigurationError as error:
        print(f"pmc-adapter: configuration error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
