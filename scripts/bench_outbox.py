#!/usr/bin/env python3
"""Benchmark: how fast a backlog of payments drains to a recovered ERP, by forwarding
concurrency.

    .venv/bin/python scripts/bench_outbox.py [--payments 1000] [--latency-ms 50]
                                             [--concurrency 1 4 8 16]

For each concurrency: a fresh SQLite database holding --payments stored payments in the
outbox (written through the storage layer, as InformarPago leaves them), the bundled ERP
(``pmc-adapter erp-sim``) answering each call --latency-ms late, and one
``pmc-adapter worker`` process with ``PMC_ADAPTER_FORWARD_CONCURRENCY`` set; the clock
runs from the worker's start until the database says every payment is delivered. Prints
the time, payments per second, the speed-up over the first concurrency listed (the
baseline, measured in the same run), and the ERP's count of payments received twice at
the same time (must be 0).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from support.servers import ErpSim  # noqa: E402  (the tests' own ERP process helper)

from adapter.domain.model import Currency, Outcome, PaymentNotice  # noqa: E402
from adapter.storage.db import make_engine, upgrade_schema  # noqa: E402
from adapter.storage.unit_of_work import Storage  # noqa: E402

CLI = str(Path(sys.executable).with_name("pmc-adapter"))


def seed(url: str, count: int) -> None:
    storage = Storage(make_engine(url))
    upgrade_schema(storage.engine)
    now = datetime.now(timezone.utc)
    with storage.unit_of_work() as uow:
        for number in range(count):
            notice = PaymentNotice("1234", f"BENCH-{number:06d}", f"C{number}", "F-1",
                                   Decimal("1.00"), Currency.ARS, now)
            pk = uow.payments.add(notice, Outcome.INVOICE_UNKNOWN, f"R-{number:06d}", None)
            uow.forwards.enqueue(pk)
        uow.commit()
    storage.engine.dispose()


def delivered(url: str) -> int:
    from sqlalchemy import create_engine, text
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.execute(text(
                "SELECT count(*) FROM erp_forwards WHERE status = 'delivered'")).scalar_one()
    finally:
        engine.dispose()


def drain(folder: Path, erp: ErpSim, payments: int, concurrency: int) -> float:
    url = f"sqlite:///{folder / f'outbox-{concurrency}.sqlite3'}"
    seed(url, payments)
    environment = {**os.environ, "PMC_ADAPTER_DATABASE_URL": url,
                   "PMC_ADAPTER_ERP_WSDL": erp.wsdl_url, "PMC_ADAPTER_ERP_TIMEOUT": "5",
                   "PMC_ADAPTER_FORWARD_POLL": "0.2",
                   "PMC_ADAPTER_FORWARD_CONCURRENCY": str(concurrency)}
    started = time.monotonic()
    worker = subprocess.Popen([CLI, "worker"], env=environment,
                              stdout=open(folder / f"worker-{concurrency}.log", "wb"),
                              stderr=subprocess.STDOUT)
    try:
        while delivered(url) < payments:
            if worker.poll() is not None:
                raise RuntimeError((folder / f"worker-{concurrency}.log").read_text())
            time.sleep(0.2)
        return time.monotonic() - started
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=1000)
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8, 16])
    args = parser.parse_args()
    print("command: " + " ".join([sys.executable, *sys.argv]))
    print("load average at start: %.2f %.2f %.2f" % os.getloadavg() + f" ({os.cpu_count()} CPUs)")
    with tempfile.TemporaryDirectory(prefix="bench-outbox-") as name:
        folder = Path(name)
        (folder / "erp").mkdir()
        erp = ErpSim(folder / "erp", []).start()
        try:
            erp.configure(latency_ms=args.latency_ms)
            print(f"{args.payments} payments in the outbox, ERP answering {args.latency_ms} ms "
                  f"late; one `pmc-adapter worker`")
            print(f"{'concurrency':>11} {'drained in':>11} {'payments/s':>11} "
                  f"{'x first':>8}")
            baseline = None
            for concurrency in args.concurrency:
                seconds = drain(folder, erp, args.payments, concurrency)
                rate = args.payments / seconds
                baseline = baseline or rate
                print(f"{concurrency:>11} {seconds:>10.1f}s {rate:>11.1f} {rate / baseline:>7.1f}x")
            print(f"payments the ERP received twice at the same time: {erp.state()['overlaps']}")
        finally:
            erp.stop()


if __name__ == "__main__":
    main()
