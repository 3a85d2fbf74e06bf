#!/usr/bin/env python3
"""Benchmark: the payment report (COB) reader and importer on a large file, against merely
reading its lines.

    .venv/bin/python scripts/bench_cob.py [--lines 1000000] [--rounds 1] [--skip-postgres]

Writes a valid COB file of --lines synthetic payments in a temporary folder (the tests'
own builder, tests/support/cobgen.py), then, in a fresh interpreter each (so that each peak RSS,
``ru_maxrss``, is its own):

* ``baseline``: reads the file's lines (text, latin-1) and does nothing with them;
* ``cob``: ``check_cob`` (pass 1, every whole-file check) then ``read_cob`` (pass 2, every
  line read into a ``CobLine``);
* ``import``: what ``pmc-adapter import-cob`` does (both passes, a SHA-256 of the file, every
  line stored in batches in one transaction) into a fresh SQLite file, and into a fresh
  PostgreSQL database where one answers (``--postgres-url``, as the tests'), then the same
  file again (recognised, nothing written).

Prints the file's size, then for each: wall time, lines/s, CPU time, how many times the
baseline's CPU time a pass takes, and peak RSS. The machine is shared: the ratio, on CPU
time, is the figure to compare between runs. With --rounds N each is run N times and the
run with the least CPU time is kept.
The temporary folder is removed at the end.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from support.cobgen import write_many  # noqa: E402  (the tests' own file builder)

BILLER = "1234"
DAY = date(2026, 11, 26)


def peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)  # bytes there, KiB here


def clocks() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def since(start: tuple[float, float]) -> tuple[float, float]:
    """(wall, CPU) seconds since ``start``."""
    now = clocks()
    return now[0] - start[0], now[1] - start[1]


def measure(kind: str, path: str, database_url: str | None = None) -> dict:
    """One measurement, in this (fresh) interpreter."""
    if kind == "import":
        from adapter.service.reports import ReportImporter
        from adapter.storage.db import make_engine, upgrade_schema
        from adapter.storage.unit_of_work import Storage

        engine = make_engine(database_url)
        upgrade_schema(engine)
        importer = ReportImporter(Storage(engine))
        start = clocks()
        first = importer.import_file(path)
        imported = since(start)
        start = clocks()
        again = importer.import_file(path)
        return {"import": imported, "again": since(start), "created": first.created,
                "recognised": again.already_imported_as is not None,
                "peak_rss_mib": peak_rss_mib()}
    if kind == "baseline":
        start = clocks()
        with open(path, encoding="latin-1", newline="") as handle:
            lines = sum(1 for _ in handle)
        return {"read": since(start), "lines": lines, "peak_rss_mib": peak_rss_mib()}
    from adapter.files.cob import RejectedLine, check_cob, read_cob
    start = clocks()
    summary = check_cob(path)
    checked = since(start)
    start = clocks()
    lines = rejected = 0
    for outcome in read_cob(path):
        lines += 1
        rejected += type(outcome) is RejectedLine
    return {"check": checked, "read": since(start), "lines": lines,
            "records": summary.records, "total": str(summary.total), "rejected": rejected,
            "peak_rss_mib": peak_rss_mib()}


def run(kind: str, path: Path, database_url: str = "") -> dict:
    answer = subprocess.run([sys.executable, __file__, "--measure", kind, str(path),
                             database_url], capture_output=True, text=True)
    if answer.returncode:
        raise RuntimeError(answer.stderr)
    return json.loads(answer.stdout)


@contextlib.contextmanager
def postgres(server_url: str, skip: bool):
    if skip:
        yield None
        return
    from support.databases import fresh_postgres_database  # the tests' own helper (not in the children)

    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(fresh_postgres_database(server_url, "pmc_bench_cob"))
        except Exception as error:
            print(f"PostgreSQL skipped: {server_url} did not answer ({error.__class__.__name__})")
            yield None
            return
        yield url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000, help="detail records")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each; the fastest counts")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--postgres-url", default=os.environ.get(
        "PMC_ADAPTER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--measure", nargs=3, metavar=("KIND", "FILE", "DATABASE"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(*args.measure)))
        return
    print("command: " + " ".join([sys.executable, *sys.argv]))
    print("load average at start: %.2f %.2f %.2f" % os.getloadavg() + f" ({os.cpu_count()} CPUs)")

    with tempfile.TemporaryDirectory(prefix="bench-cob-") as folder:
        path = Path(folder) / f"COB{BILLER}.271126"
        started = time.perf_counter()
        write_many(path, BILLER, DAY, args.lines)
        written = time.perf_counter() - started
        size = path.stat().st_size
        print(f"file: {args.lines:,} detail records, {size / 2**20:.1f} MiB "
              f"({size:,} bytes), written in {written:.1f} s")
        baseline = min((run("baseline", path) for _ in range(args.rounds)),
                       key=lambda figures: figures["read"][1])
        cob = min((run("cob", path) for _ in range(args.rounds)),
                  key=lambda figures: figures["check"][1] + figures["read"][1])
        imports = {"SQLite": run("import", path, f"sqlite:///{folder}/bench.sqlite3")}
        with postgres(args.postgres_url, args.skip_postgres) as url:
            if url:
                imports["PostgreSQL"] = run("import", path, url)
    assert cob["records"] == cob["lines"] == args.lines and cob["rejected"] == 0, cob
    records = args.lines + 2  # the header and the trailer are read too
    both = [check + read for check, read in zip(cob["check"], cob["read"])]

    def row(name: str, seconds: list[float], passes: int, peak: float) -> str:
        wall, cpu = seconds
        return (f"{name:<22}{wall:>7.2f} s{passes * records / wall:>12,.0f}/s{cpu:>7.2f} s"
                f"{cpu / passes / baseline['read'][1]:>8.1f} x{peak:>9.1f} MiB")

    print(f"{'':<22}{'wall':>9}{'lines':>14}{'CPU':>9}{'/baseline':>10}{'peak RSS':>13}")
    print(row("baseline (read lines)", baseline["read"], 1, baseline["peak_rss_mib"]))
    print(row("check_cob (pass 1)", cob["check"], 1, cob["peak_rss_mib"]))
    print(row("read_cob (pass 2)", cob["read"], 1, cob["peak_rss_mib"]))
    print(row("both passes, per pass", both, 2, cob["peak_rss_mib"]))
    for database, figures in imports.items():
        assert figures["created"] == args.lines and figures["recognised"], figures
        print(row(f"import, {database}", figures["import"], 1, figures["peak_rss_mib"])
              + f"   (again: {figures['again'][0]:.2f} s, recognised)")
    print(f"/baseline: CPU time per pass over the baseline's (wall time moves with the "
          f"machine's load; an import's CPU is this process's, not the database server's); "
          f"peak RSS: of the process, both passes in one; total {cob['total']}")


if __name__ == "__main__":
    main()
