"""``pmc-adapter``: the command line.

``pmc-adapter serve`` brings the database schema up to date and serves the
SOAP service with gunicorn (one command for one machine).
"""
from __future__ import annotations

import argparse
import logging
import sys

from adapter.config import Settings, load_settings
from adapter.errors import ConfigurationError
from adapter.storage.db import make_engine, upgrade_schema

log = logging.getLogger("adapter")


def _serve(settings: Settings) -> int:
    from adapter.app import make_wsgi_app
    from adapter.gunicorn_app import serve_wsgi

    engine = make_engine(settings.database_url)
    upgrade_schema(engine)
    engine.dispose()  # workers open their own connections after the fork
    if not settings.empresas:
        log.warning("PMC_ADAPTER_EMPRESAS is not set: serving every biller number")

    serve_wsgi(lambda: make_wsgi_app(settings), bind=settings.bind, workers=settings.workers,
               log_level=settings.log_level)
    return 0


def _upgrade(settings: Settings) -> int:
    created = upgrade_schema(make_engine(settings.database_url))
    print(f"schema up to date; created: {', '.join(created) or 'nothing'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pmc-adapter", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="TOML config file (default: $PMC_ADAPTER_CONFIG)")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="upgrade the schema and serve SOAP with gunicorn")
    serve.add_argument("--bind", help="HOST:PORT (default: $PMC_ADAPTER_BIND or 127.0.0.1:8080)")
    serve.add_argument("--workers", type=int, help="gunicorn workers (default: 2)")
    commands.add_parser("upgrade-schema", help="create missing tables and exit")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s [%(process)d] [%(levelname)s] %(name)s: %(message)s")
    try:
        settings = load_settings(args.config)
        overrides = {key: getattr(args, key, None) for key in ("bind", "workers")}
        settings = Settings(**{**settings.__dict__,
                               **{k: v for k, v in overrides.items() if v is not None}})
    except ConfigurationError as error:
        print(f"pmc-adapter: configuration error: {error}", file=sys.stderr)
        return 2
    if args.command == "serve":
        return _serve(settings)
    return _upgrade(settings)


if __name__ == "__main__":
    sys.exit(main())
