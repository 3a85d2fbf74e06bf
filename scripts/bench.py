#!/usr/bin/env python3
"""Benchmark: latency, throughput and worker memory of a real `pmc-adapter serve`.

Starts the service on loopback (SQLite in a temporary folder unless --database-url),
creates --requests invoices with AltaFactura, then runs ConsultarDeuda and
InformarPago against them from --concurrency client threads, and prints figures.
With --erp, the bundled legacy ERP runs too (its own process, --erp-latency-ms
slower per call) and the adapter asks it and forwards every payment to it.

    .venv/bin/python scripts/bench.py [--requests 2000] [--concurrency 4] [--workers 2]
    .venv/bin/python scripts/bench.py --erp [--erp-latency-ms 50] [--erp-timeout 3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from support.data import free_port  # noqa: E402
from support.soap import envelope  # noqa: E402  (the tests' own envelope builder)


CLI = str(Path(sys.executable).with_name("pmc-adapter"))


def start(arguments: list[str], workdir: str, env: dict) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen([CLI, *arguments, "--bind", f"127.0.0.1:{port}"], cwd=workdir,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "PMC_ADAPTER_LOG_LEVEL": "warning", **env})
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if requests.get(url + "/health", timeout=1).status_code == 200:
                return process, url
        except requests.ConnectionError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"{arguments[0]} did not start")


def rss_mib(pid: int) -> float:
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    total = 0
    for p in [pid] + [int(c) for c in children.stdout.split()]:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


def run(name: str, url: str, bodies: list[tuple[str, bytes]], concurrency: int) -> None:
    local = threading.local()
    latencies: list[float] = []

    def one(item):
        action, body = item
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        started = time.perf_counter()
        response = session.post(url + "/soap", data=body, timeout=30, headers={
            "Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{action}"'})
        elapsed = time.perf_counter() - started
        assert response.status_code == 200, response.text[:500]
        latencies.append(elapsed)

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, bodies))
    wall = time.perf_counter() - started
    latencies.sort()
    pct = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1e3  # noqa: E731
    print(f"{name:<20} {len(latencies):>6} req  {len(latencies) / wall:>8.1f} req/s  "
          f"p50 {pct(0.50):6.1f} ms  p95 {pct(0.95):6.1f} ms  p99 {pct(0.99):6.1f} ms  "
          f"mean {statistics.mean(latencies) * 1e3:6.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--database-url")
    parser.add_argument("--erp", action="store_true", help="run against the bundled ERP")
    parser.add_argument("--erp-latency-ms", type=int, default=0)
    parser.add_argument("--erp-timeout", type=float, default=3.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as workdir:
        database_url = args.database_url or f"sqlite:///{workdir}/bench.sqlite3"
        env = {"PMC_ADAPTER_DATABASE_URL": database_url}
        erp = None
        if args.erp:
            invoices = Path(workdir) / "erp.csv"
            invoices.write_text("cliente,factura,moneda,vencimiento1,importe1,vencimiento2,"
                                "importe2,vencimiento3,importe3\n")
            erp, erp_url = start(["erp-sim", "--invoices", str(invoices),
                                  "--latency-ms", str(args.erp_latency_ms)], workdir, {})
            env.update(PMC_ADAPTER_ERP_WSDL=erp_url + "/erp?wsdl",
                       PMC_ADAPTER_ERP_TIMEOUT=str(args.erp_timeout))
        process, url = start(["serve", "--workers", str(args.workers)], workdir, env)
        try:
            erp_note = (f", ERP at {args.erp_latency_ms} ms latency, timeout {args.erp_timeout} s"
                        if args.erp else ", no ERP")
            print(f"pmc-adapter bench: {args.requests} requests per operation, "
                  f"{args.concurrency} client threads, {args.workers} gunicorn workers, "
                  f"{database_url.split(':')[0]}{erp_note}, {os.cpu_count()} CPUs")
            print(f"memory at start: {rss_mib(process.pid):.0f} MiB RSS (master + workers)")
            run_id, day = uuid.uuid4().hex[:8], date.today() + timedelta(days=30)
            customers = [f"B{run_id}{i}" for i in range(args.requests)]
            run("AltaFactura", url, [("AltaFactura", envelope("AltaFactura", [
                ("idEmpresa", "1234"), ("idCliente", c), ("idFactura", "F1"),
                ("moneda", "ARS"), ("vencimientos", [("vencimiento", [
                    ("fecha", day.isoformat()), ("importe", "1500.00")])])]))
                for c in customers], args.concurrency)
            run("ConsultarDeuda", url, [("ConsultarDeuda", envelope("ConsultarDeuda", [
                ("idEmpresa", "1234"), ("idCliente", c)])) for c in customers],
                args.concurrency)
            paid_at = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
            payments = [("InformarPago", envelope("InformarPago", [
                ("idEmpresa", "1234"), ("idOperacion", f"OP{c}"), ("idCliente", c),
                ("idFactura", "F1"), ("importe", "1500.00"), ("moneda", "ARS"),
                # now, not later: a notice dated ahead of the server's clock is not applied
                ("fechaPago", paid_at)]))
                for c in customers]
            run("InformarPago", url, payments, args.concurrency)
            run("InformarPago replay", url, payments, args.concurrency)
            print(f"memory at end:   {rss_mib(process.pid):.0f} MiB RSS (master + workers)")
            if erp is not None:
                started, total = time.perf_counter(), len(payments)
                while time.perf_counter() - started < 120:
                    received = len(requests.get(erp_url + "/_sim/state", timeout=10)
                                   .json()["payments"])
                    if received >= total:
                        break
                    time.sleep(0.2)
                print(f"forwarded to the ERP: {received} of {total} payments, all within "
                      f"{time.perf_counter() - started:.1f} s after the last notice")
        finally:
            for running in (process, erp):
                if running is not None:
                    running.terminate()
                    running.wait(timeout=30)


if __name__ == "__main__":
    main()
