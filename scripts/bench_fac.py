#!/usr/bin/env python3
"""Benchmark: a billing base written to a FAC file and read back, streaming.

    .venv/bin/python scripts/bench_fac.py [--invoices 1000000] [--import-invoices 0]
                                          [--csv-invoices 0]

Each step runs in a child process of its own, so that its peak RSS (``ru_maxrss``) is
that step's alone: writing N invoices with ``adapter.files.fac.fac_records``, reading them back
with ``FacReader`` (every record parsed into an Invoice, the trailer checked), and with
--import-invoices M, ``pmc-adapter import-fac`` of an M-invoice file into a new SQLite
database, and with --csv-invoices K, ``pmc-adapter upload-fac --invoices CSV --output
DIR`` of a K-invoice list (the columns of scripts/demo-erp-invoices.csv) into a new
SQLite database: the whole build of the next file (every invoice looked up, fingerprinted,
recorded as carried, written), uploading nothing. Each step is also run at a tenth of its size in the same run: flat memory means
the two peaks are about equal (the ratio printed), whatever the machine.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CLI = str(Path(sys.executable).with_name("pmc-adapter"))
DAY = date(2026, 12, 7)


def invoices(count: int):
    from adapter.domain.model import Currency, DueDate, Invoice, Origin
    for n in range(count):
        first = DAY + timedelta(days=10 + n % 20)
        yield Invoice("1234", f"C{n:08d}", f"F-{n:010d}", Currency.ARS,
                      (DueDate(first, Decimal(n % 100_000) + Decimal("0.50")),
                       DueDate(first + timedelta(days=10), Decimal(n % 100_000) + 10)),
                      Origin.BILLING_BASE, ticket_message="Gracias por su pago",
                      screen_message=f"Cuota {n % 12 + 1}")


def write_csv(count: int, path: Path) -> None:
    with open(path, "w", encoding="utf-8") as out:
        out.write("cliente,factura,moneda,vencimiento1,importe1,vencimiento2,importe2,"
                  "vencimiento3,importe3\n")
        for invoice in invoices(count):
            first, second = invoice.due_dates
            out.write(f"{invoice.customer_id},{invoice.invoice_id},ARS,"
                      f"{first.on + timedelta(days=3650)},{first.amount},"
                      f"{second.on + timedelta(days=3650)},{second.amount},,\n")


def step(kind: str, count: int, path: str) -> dict:
    """Run in the child: one step, its figures."""
    started = time.perf_counter()
    if kind == "write":
        from adapter.files.fac import LINE_END, fac_records
        with open(path, "w", encoding="latin-1", newline="") as out:
            for record in fac_records("1234", DAY, invoices(count)):
                out.write(record + LINE_END)
    elif kind == "read":
        from adapter.files.fac import FacReader, file_lines
        reader = FacReader(file_lines(path))
        read = sum(1 for _ in reader.invoices())
        assert read == count and not reader.rejected, (read, reader.rejected[:3])
    elif kind == "upload":
        database, out = path + ".sqlite3", path + ".out"
        os.mkdir(out)
        result = subprocess.run([CLI, "upload-fac", "--empresa", "1234", "--invoices", path,
                                 "--output", out, "--at", "2026-12-09T10:00"],
                                capture_output=True, text=True,
                                env={**os.environ, "PMC_ADAPTER_EMPRESAS": "1234",
                                     "PMC_ADAPTER_DATABASE_URL": f"sqlite:///{database}"})
        assert result.returncode == 0, result.stderr
        assert f"({count} invoice(s): {count} new" in result.stdout, result.stdout
    else:  # import
        database = path + ".sqlite3"
        result = subprocess.run([CLI, "import-fac", path], capture_output=True, text=True,
                                env={**os.environ, "PMC_ADAPTER_EMPRESAS": "1234",
                                     "PMC_ADAPTER_DATABASE_URL": f"sqlite:///{database}"})
        assert result.returncode == 0, result.stderr
        assert f"{count} created" in result.stdout, result.stdout
    seconds = time.perf_counter() - started
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": seconds, "peak_rss_mib": max(own, children) / 1024}


def run(kind: str, count: int, path: Path) -> dict:
    result = subprocess.run([sys.executable, __file__, "--step", kind, str(count), str(path)],
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    if len(sys.argv) == 5 and sys.argv[1] == "--step":
        print(json.dumps(step(sys.argv[2], int(sys.argv[3]), sys.argv[4])))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=1_000_000)
    parser.add_argument("--import-invoices", type=int, default=0,
                        help="also import a file of this many invoices (0: no import)")
    parser.add_argument("--csv-invoices", type=int, default=0,
                        help="also build the next file from a list of this many invoices "
                             "(0: not)")
    args = parser.parse_args()
    print(f"command: {' '.join([sys.executable, *sys.argv])}")
    print(f"load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)")
    with tempfile.TemporaryDirectory(prefix="pmc-bench-fac-") as workdir:
        plan = [("write", args.invoices), ("read", args.invoices)]
        if args.import_invoices:
            plan.append(("import", args.import_invoices))
        if args.csv_invoices:
            plan.append(("upload", args.csv_invoices))
        print(f"{'step':<7} {'invoices':>9} {'seconds':>8} {'per s':>9} {'peak RSS MiB':>12} "
              f"{'RSS at 1/10':>11} {'ratio':>6}")
        for kind, count in plan:
            small = max(1, count // 10)
            figures = []
            for size in (small, count):
                path = Path(workdir) / f"FAC1234.071226.{size}"
                if kind == "upload":
                    path = Path(workdir) / f"invoices-{size}.csv"
                    write_csv(size, path)
                elif kind != "write" and not path.exists():
                    run("write", size, path)
                figures.append(run(kind, size, path))
            little, whole = figures
            print(f"{kind:<7} {count:>9} {whole['seconds']:8.1f} "
                  f"{count / whole['seconds']:9.0f} {whole['peak_rss_mib']:12.1f} "
                  f"{little['peak_rss_mib']:11.1f} "
                  f"{whole['peak_rss_mib'] / little['peak_rss_mib']:6.2f}")
            if kind == "write":
                size_mib = (Path(workdir) / f"FAC1234.071226.{count}").stat().st_size / 2**20
                print(f"        the file: {size_mib:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
