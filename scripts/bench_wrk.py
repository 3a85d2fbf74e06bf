#!/usr/bin/env python3
"""Benchmark with wrk: the adapter against a bare spyne service, per operation.

    .venv/bin/python scripts/bench_wrk.py [--duration 10] [--connections 16] [--threads 2]
                                          [--workers 2] [--skip-postgres] [--skip-both]
                                          [--erp-latency-ms 50]

What it measures: the throughput (req/s), the latency percentiles (p50/p95/p99,
from wrk's own latency histogram), the server's own CPU time per request (user +
system of the gunicorn master and workers, from /proc, over the run: the figure
least moved by other load on a shared machine) and the errors of ConsultarDeuda
and InformarPago, driven by wrk with a Lua script, on

* ``bare``: scripts/bare_spyne.py -- the same operations and messages on plain
  spyne (fixed answers, no gateway, no database), i.e. the floor spyne itself sets;
* ``sqlite``: ``pmc-adapter serve`` on a SQLite file in a temporary folder;
* ``postgres``: ``pmc-adapter serve`` on a PostgreSQL database of its own, created
  on --postgres-url's server and dropped at the end (skipped when it does not
  answer, or with --skip-postgres);
* ``sqlite/xs``: as ``sqlite``, with ``validation = "both"``: xmlschema judges
  every message too, not only the refused ones (skipped with --skip-both).

All three run under gunicorn with the product's settings (worker class, --workers,
16 threads per worker). The adapter's data is seeded through its SOAP API
(AltaFactura): --customers customers of 3 open invoices each for ConsultarDeuda
(rotated over), and --payment-customers more (3 invoices each) for InformarPago.
Every InformarPago carries a new idOperacion (run tag, wrk thread, counter) and pays
the next unpaid invoice; once the pool is used up it pays invoices already paid,
answered with code 4 (still a stored notice): the table counts answers by code.
``payment_notify``, PMC's JSON API's notice (InformarPago's twin, onto the same use
case), is measured on the adapters only, over the same pool of invoices; its
"x bare" is against bare spyne's InformarPago.
Runs are interleaved (bare, sqlite, postgres, sqlite/xs, and again --rounds times); a run
counts as errors the non-200 answers, the SOAP faults and wrk's socket errors.
After each run the RSS of the gunicorn workers (their sum, from /proc) is taken.
With --erp-latency-ms, the adapters ask the bundled legacy ERP too (its own
process, no invoices, answering after that many ms): how a gunicorn shape
(--workers x --server-threads) holds up when requests wait on the ERP.
wrk is installed with apt-get when missing. Every process started and the
PostgreSQL database are cleaned up at the end, also on Ctrl-C.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import requests
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from support.data import free_port  # noqa: E402
from support.databases import fresh_postgres_database  # noqa: E402  (the tests' own helpers)

CLI = str(Path(sys.executable).with_name("pmc-adapter"))
BILLER = "1234"
AMOUNT = "1500.00"
SOAP_PREFIX = ('<?xml version="1.0" encoding="UTF-8"?>'
               '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" '
               'xmlns:p="urn:pmc-adapter:empresa:v1"><soap:Body>')
SOAP_SUFFIX = "</soap:Body></soap:Envelope>"
# PMC's JSON API's notice (InformarPago's twin): the adapter only; its "x bare" is
# against bare spyne's InformarPago
JSON_NOTICE = "payment_notify"
PAYING = ("InformarPago", JSON_NOTICE)
OPERATIONS = ("ConsultarDeuda", "InformarPago", JSON_NOTICE)

# One Lua script for both operations; wrk passes it the arguments after "--".
#   debt    NTHREADS CUSTOMERS
#   payment NTHREADS OFFSET POOL TAG FECHAPAGO
# Each wrk thread counts its answers (status, faults, codigoRespuesta, invoices
# listed); done() sums them with wrk's statistics into one "RESULT {json}" line.
LUA = r"""
local PREFIX = [[__PREFIX__]]
local SUFFIX = [[__SUFFIX__]]
local threads = {}
local next_id = 0

function setup(thread)
  next_id = next_id + 1
  thread:set("tid", next_id)
  table.insert(threads, thread)
end

function init(args)
  mode = args[1]
  nthreads = tonumber(args[2])
  counter, non200, faults, invoices, answers = 0, 0, 0, 0, 0
  codes = {}
  headers = {["Content-Type"] = "text/xml; charset=utf-8"}
  if mode == "debt" then
    headers["SOAPAction"] = '"ConsultarDeuda"'
    bodies = {}
    for c = 0, tonumber(args[3]) - 1 do
      bodies[c + 1] = PREFIX .. "<p:ConsultarDeuda><p:idEmpresa>__BILLER__</p:idEmpresa>"
        .. "<p:idCliente>D" .. c .. "</p:idCliente></p:ConsultarDeuda>" .. SUFFIX
    end
  elseif mode == "notify" then
    headers = {["Content-Type"] = "application/json"}
    offset, pool, tag, paid_at = tonumber(args[3]), tonumber(args[4]), args[5], args[6]
  else
    headers["SOAPAction"] = '"InformarPago"'
    offset, pool, tag, paid_at = tonumber(args[3]), tonumber(args[4]), args[5], args[6]
  end
end

function request()
  local k = counter
  counter = counter + 1
  local slot = k * nthreads + tid - 1
  local body
  if mode == "debt" then
    body = bodies[slot % #bodies + 1]
  elseif mode == "notify" then
    local index = (offset + slot) % pool
    body = '{"access_token": "-", "company_id": "__BILLER__", "operation_id": "'
      .. tag .. "-" .. tid .. "-" .. k .. '", "customer_id": "P' .. math.floor(index / 3)
      .. '", "invoice_id": "F' .. (index % 3 + 1) .. '", "amount": "__AMOUNT__", '
      .. '"currency": "ARS", "payment_date": "' .. paid_at .. '"}'
    return wrk.format("POST", "/api/v1/payment_notify", headers, body)
  else
    local index = (offset + slot) % pool
    body = PREFIX .. "<p:InformarPago><p:idEmpresa>__BILLER__</p:idEmpresa>"
      .. "<p:idOperacion>" .. tag .. "-" .. tid .. "-" .. k .. "</p:idOperacion>"
      .. "<p:idCliente>P" .. math.floor(index / 3) .. "</p:idCliente>"
      .. "<p:idFactura>F" .. (index % 3 + 1) .. "</p:idFactura>"
      .. "<p:importe>__AMOUNT__</p:importe><p:moneda>ARS</p:moneda>"
      .. "<p:fechaPago>" .. paid_at .. "</p:fechaPago></p:InformarPago>" .. SUFFIX
  end
  return wrk.format("POST", nil, headers, body)
end

function response(status, hdrs, body)
  answers = answers + 1
  if status ~= 200 then non200 = non200 + 1 end
  body = body or ""
  if string.find(body, "Fault>", 1, true) then faults = faults + 1 end
  local code = string.match(body, "codigoRespuesta>(%d+)<")
    or string.match(body, '"code": *"(%d+)"') or "none"
  codes[code] = (codes[code] or 0) + 1
  local _, tags = string.gsub(body, "idFactura>", "")
  invoices = invoices + tags / 2
end

function done(summary, latency, requests)
  local total = {non200 = 0, faults = 0, invoices = 0, answers = 0, max_counter = 0}
  local codes_total = {}
  for _, thread in ipairs(threads) do
    for _, name in ipairs({"non200", "faults", "invoices", "answers"}) do
      total[name] = total[name] + thread:get(name)
    end
    total.max_counter = math.max(total.max_counter, thread:get("counter"))
    for code, n in pairs(thread:get("codes")) do
      codes_total[code] = (codes_total[code] or 0) + n
    end
  end
  local code_parts = {}
  for code, n in pairs(codes_total) do
    table.insert(code_parts, string.format('"%s": %d', code, n))
  end
  local e = summary.errors
  io.write(string.format('RESULT {"requests": %d, "duration_us": %d, '
    .. '"p50_us": %d, "p95_us": %d, "p99_us": %d, "max_us": %d, '
    .. '"socket_errors": %d, "timeouts": %d, "wrk_status_errors": %d, '
    .. '"non200": %d, "faults": %d, "invoices": %d, "answers": %d, "max_counter": %d, '
    .. '"codes": {%s}}\n',
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max,
    e.connect + e.read + e.write, e.timeout, e.status,
    total.non200, total.faults, total.invoices, total.answers, total.max_counter,
    table.concat(code_parts, ", ")))
end
"""


# -- small helpers --------------------------------------------------------------

def ensure_wrk() -> str:
    """The path of wrk, installed with apt-get when missing."""
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk not found: apt-get install -y wrk", flush=True)
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    subprocess.run([*sudo, "apt-get", "install", "-y", "wrk"], check=True,
                   stdout=subprocess.DEVNULL)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk is still missing after apt-get install")
    return found


def soap_body(operation: str, fields: str) -> bytes:
    return f"{SOAP_PREFIX}<p:{operation}>{fields}</p:{operation}>{SOAP_SUFFIX}".encode()


def worker_pids(master_pid: int) -> list[str]:
    """The gunicorn workers: the master's children."""
    return subprocess.run(["pgrep", "-P", str(master_pid)], capture_output=True,
                          text=True).stdout.split()


def server_cpu_seconds(master_pid: int) -> float:
    """CPU time (user + system) used so far by the master and its workers, in seconds."""
    ticks = 0
    for pid in [str(master_pid), *worker_pids(master_pid)]:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def worker_rss_mib(master_pid: int) -> float:
    """Sum of VmRSS of the gunicorn workers, in MiB."""
    total_kib = 0
    for pid in worker_pids(master_pid):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kib += int(line.split()[1])
    return total_kib / 1024


# -- servers --------------------------------------------------------------------

@dataclass
class Target:
    """One server under test."""
    name: str
    process: subprocess.Popen
    url: str                      # the SOAP endpoint
    log: Path
    payments_sent: int = 0        # InformarPago slots used so far (the next run's offset)
    results: dict = field(default_factory=dict)


def start_process(name: str, command: list[str], workdir: Path, env: dict) -> tuple[subprocess.Popen, Path]:
    """Start a server in a session of its own (Ctrl-C reaches only us), log to a file."""
    log = workdir / f"{name.replace('/', '-')}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=workdir, stdout=out, stderr=subprocess.STDOUT,
                                   env={**os.environ, **env}, start_new_session=True)
    return process, log


def wait_ready(process: subprocess.Popen, check, log: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if check():
                return
        except (requests.ConnectionError, requests.Timeout):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server did not become ready:\n{log.read_text()[-3000:]}")


def start_bare(workdir: Path, workers: int, threads: int, running: list) -> Target:
    port = free_port()
    process, log = start_process("bare", [
        sys.executable, str(ROOT / "scripts" / "bare_spyne.py"), "--bind", f"127.0.0.1:{port}",
        "--workers", str(workers), "--threads", str(threads)], workdir, {})
    running.append(process)
    url = f"http://127.0.0.1:{port}/soap"
    probe = soap_body("ConsultarDeuda", f"<p:idEmpresa>{BILLER}</p:idEmpresa><p:idCliente>D0</p:idCliente>")
    wait_ready(process, lambda: requests.post(url, data=probe, timeout=2, headers={
        "Content-Type": "text/xml; charset=utf-8"}).status_code == 200, log)
    return Target("bare", process, url, log)


def start_erp(workdir: Path, latency_ms: int, running: list) -> str:
    """The bundled legacy ERP (no invoices of its own: every answer is "none here",
    after ``latency_ms``); its WSDL's URL."""
    port = free_port()
    invoices = workdir / "erp.csv"
    invoices.write_text("cliente,factura,moneda,vencimiento1,importe1,vencimiento2,"
                        "importe2,vencimiento3,importe3\n")
    process, log = start_process("erp", [
        CLI, "erp-sim", "--bind", f"127.0.0.1:{port}", "--invoices", str(invoices),
        "--latency-ms", str(latency_ms)], workdir, {"PMC_ADAPTER_LOG_LEVEL": "warning"})
    running.append(process)
    base = f"http://127.0.0.1:{port}"
    wait_ready(process, lambda: requests.get(base + "/erp?wsdl", timeout=2).status_code == 200,
               log)
    return base + "/erp?wsdl"


def start_product(name: str, database_url: str, workdir: Path, workers: int, threads: int,
                  running: list, validation: str = "libxml2",
                  erp_wsdl: str | None = None) -> Target:
    port = free_port()
    erp = {"PMC_ADAPTER_ERP_WSDL": erp_wsdl, "PMC_ADAPTER_ERP_TIMEOUT": "3"} if erp_wsdl \
        else {}
    process, log = start_process(name, [
        CLI, "serve", "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
        "--threads", str(threads)], workdir, {
        "PMC_ADAPTER_DATABASE_URL": database_url, "PMC_ADAPTER_LOG_LEVEL": "warning",
        "PMC_ADAPTER_VALIDATION": validation, **erp})
    running.append(process)
    base = f"http://127.0.0.1:{port}"
    wait_ready(process, lambda: requests.get(base + "/health", timeout=2).status_code == 200, log)
    return Target(name, process, base + "/soap", log)


def stop(process: subprocess.Popen) -> None:
    """SIGTERM to the gunicorn master (it stops its workers); SIGKILL to its session if stuck."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)  # workers left behind, if any (own session)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)


# -- PostgreSQL -----------------------------------------------------------------

@contextlib.contextmanager
def postgres_database(server_url: str):
    """A new database on server_url's server (its URL), dropped at the end; None if no answer."""
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(
                fresh_postgres_database(server_url, f"pmc_bench_wrk_{os.getpid()}"))
        except Exception as error:
            print(f"PostgreSQL skipped: {server_url} did not answer ({error.__class__.__name__})")
            yield None
            return
        yield url
    print(f"dropped PostgreSQL database {make_url(url).database}")


# -- seeding --------------------------------------------------------------------

def seed(target: Target, customers: list[str], concurrency: int = 8) -> None:
    """Create 3 open invoices (F1..F3, one due date 30 days ahead) per customer via AltaFactura."""
    due = (date.today() + timedelta(days=30)).isoformat()
    sessions: dict[int, requests.Session] = {}

    def one(item: tuple[str, int]) -> None:
        customer, number = item
        session = sessions.setdefault(threading.get_ident(), requests.Session())
        body = soap_body("AltaFactura", (
            f"<p:idEmpresa>{BILLER}</p:idEmpresa><p:idCliente>{customer}</p:idCliente>"
            f"<p:idFactura>F{number}</p:idFactura><p:moneda>ARS</p:moneda>"
            f"<p:vencimientos><p:vencimiento><p:fecha>{due}</p:fecha>"
            f"<p:importe>{AMOUNT}</p:importe></p:vencimiento></p:vencimientos>"
            f"<p:descripcion>Factura {number}</p:descripcion>"))
        answer = session.post(target.url, data=body, timeout=30, headers={
            "Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"AltaFactura"'})
        if answer.status_code != 200 or "codigoRespuesta>0<" not in answer.text:
            raise RuntimeError(f"AltaFactura {customer}/F{number} failed: {answer.text[:500]}")

    started = time.perf_counter()
    items = [(customer, number) for customer in customers for number in (1, 2, 3)]
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, items))
    print(f"  {target.name}: {len(items)} invoices seeded in {time.perf_counter() - started:.1f} s",
          flush=True)


# -- wrk ------------------------------------------------------------------------

def write_lua(workdir: Path) -> Path:
    script = workdir / "bench.lua"
    script.write_text(LUA.replace("__PREFIX__", SOAP_PREFIX).replace("__SUFFIX__", SOAP_SUFFIX)
                      .replace("__BILLER__", BILLER).replace("__AMOUNT__", AMOUNT))
    return script


def run_wrk(wrk: str, script: Path, target: Target, args, lua_args: list[str],
            duration: float) -> dict:
    """One wrk run against target; its RESULT line as a dict (raw output in the log folder)."""
    command = [wrk, "-t", str(args.threads), "-c", str(args.connections), "-d", f"{duration:g}s",
               "--latency", "--timeout", "10s", "-s", str(script), target.url, "--",
               *[str(a) for a in lua_args]]
    done = subprocess.run(command, capture_output=True, text=True, timeout=duration + 120)
    with open(target.log.with_suffix(".wrk.txt"), "a") as out:
        out.write(shlex.join(command) + "\n" + done.stdout + done.stderr + "\n")
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout[-2000:]}{done.stderr[-2000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def lua_arguments(operation: str, target: Target, args, paid_at: str, round_: int) -> list:
    if operation == "ConsultarDeuda":
        return ["debt", args.threads, args.customers]
    mode = "notify" if operation == JSON_NOTICE else "payment"
    tag = f"{target.name[:2]}{round_}{uuid.uuid4().hex[:8]}"
    return [mode, args.threads, target.payments_sent, args.payment_customers * 3, tag, paid_at]


def measure(wrk: str, script: Path, target: Target, operation: str, args, paid_at: str,
            round_: int) -> dict:
    lua_args = lua_arguments(operation, target, args, paid_at, round_)
    cpu_before = server_cpu_seconds(target.process.pid)
    result = run_wrk(wrk, script, target, args, lua_args, args.duration)
    cpu = server_cpu_seconds(target.process.pid) - cpu_before
    if operation in PAYING:
        target.payments_sent += result["max_counter"] * args.threads
    result["cpu_ms"] = cpu * 1e3 / max(1, result["requests"])
    result["rss_mib"] = worker_rss_mib(target.process.pid)
    result["req_s"] = result["requests"] / (result["duration_us"] / 1e6)
    errors = (result["non200"] + result["faults"] + result["socket_errors"] + result["timeouts"])
    result["errors"] = errors
    print(f"  {operation:<15} {target.name:<9} round {round_}: {result['req_s']:8.1f} req/s  "
          f"p50 {result['p50_us'] / 1e3:6.1f} ms  p99 {result['p99_us'] / 1e3:7.1f} ms  "
          f"CPU {result['cpu_ms']:.2f} ms/req  errors {errors}  codes {result['codes']}  "
          f"RSS {result['rss_mib']:.0f} MiB", flush=True)
    return result


def warm_up(wrk: str, script: Path, targets: list[Target], operation: str, args,
            paid_at: str) -> None:
    """A short unrecorded run per target (first requests pay for imports and caches)."""
    for target in targets:
        lua_args = lua_arguments(operation, target, args, paid_at, 0)
        result = run_wrk(wrk, script, target, args, lua_args, args.warmup)
        if operation in PAYING:
            target.payments_sent += result["max_counter"] * args.threads


# -- report ---------------------------------------------------------------------

def print_table(operation: str, targets: list[Target]) -> None:
    bare = targets[0].results.get("InformarPago" if operation == JSON_NOTICE else operation,
                                  [])
    bare_rps = statistics.median(r["req_s"] for r in bare) if bare else None
    print(f"\n{operation} (median over rounds; latency in ms; CPU = the server's own, "
          f"per request; RSS = sum of the workers)")
    header = (f"{'server':<9} {'round':>5} {'req/s':>8} {'p50':>7} {'p95':>7} {'p99':>7} "
              f"{'x bare':>7} {'CPU ms':>6} {'requests':>8} {'non200':>6} {'faults':>6} {'sock/to':>7} "
              f"{'inv/ans':>7} {'RSS MiB':>7}  codigoRespuesta")
    print(header)
    print("-" * len(header))
    for target in targets:
        rows = target.results.get(operation, [])
        for number, r in enumerate(rows, 1):
            ratio = f"{r['req_s'] / bare_rps:7.2f}" if bare_rps else f"{'-':>7}"
            per_answer = r["invoices"] / r["answers"] if r["answers"] else 0
            codes = ", ".join(f"{code}: {n}" for code, n in sorted(r["codes"].items()))
            print(f"{target.name:<9} {number:>5} {r['req_s']:8.1f} {r['p50_us'] / 1e3:7.1f} "
                  f"{r['p95_us'] / 1e3:7.1f} {r['p99_us'] / 1e3:7.1f} {ratio} "
                  f"{r['cpu_ms']:6.2f} {r['requests']:>8} {r['non200']:>6} {r['faults']:>6} "
                  f"{r['socket_errors'] + r['timeouts']:>7} {per_answer:7.2f} "
                  f"{r['rss_mib']:7.0f}  {codes}")
        if rows:
            rps = statistics.median(r["req_s"] for r in rows)
            ratio = f"{rps / bare_rps:7.2f}" if bare_rps else f"{'-':>7}"
            med = lambda key: statistics.median(r[key] for r in rows) / 1e3  # noqa: E731
            cpu = statistics.median(r["cpu_ms"] for r in rows)
            print(f"{target.name:<9} {'med':>5} {rps:8.1f} {med('p50_us'):7.1f} "
                  f"{med('p95_us'):7.1f} {med('p99_us'):7.1f} {ratio} {cpu:6.2f}")


# -- main -----------------------------------------------------------------------

def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run (whole)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers per server")
    parser.add_argument("--server-threads", type=int, default=16, help="threads per worker")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved runs per server")
    parser.add_argument("--warmup", type=int, default=2, help="unrecorded seconds per server (whole)")
    parser.add_argument("--customers", type=int, default=100,
                        help="customers (3 invoices each) rotated over by ConsultarDeuda")
    parser.add_argument("--payment-customers", type=int, default=2000,
                        help="customers (3 invoices each) whose invoices InformarPago pays")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-both", action="store_true",
                        help="no sqlite/xs run (validation = \"both\")")
    parser.add_argument("--postgres-url", default=os.environ.get(
        "PMC_ADAPTER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--erp-latency-ms", type=int, default=None,
                        help="the adapters ask the bundled ERP too, which answers after this "
                             "many ms (every debt query and notice waits for it)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the temporary folder")
    return parser.parse_args()


def interrupt_on_signals() -> None:
    """Ctrl-C and SIGTERM both raise KeyboardInterrupt, which the cleanup handles
    (SIGINT is reset too: a shell starting us in the background may ignore it)."""
    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, handler)


def main() -> int:
    args = parse_args()
    interrupt_on_signals()
    print("command: " + shlex.join([sys.executable, *sys.argv]))
    print("load average at start: %.2f %.2f %.2f" % os.getloadavg() + f" ({os.cpu_count()} CPUs)")
    wrk = ensure_wrk()
    # Now, with the offset: earlier than any server's clock when the notices arrive.
    paid_at = datetime.now().astimezone().replace(microsecond=0).isoformat()
    print(f"wrk: {args.threads} threads, {args.connections} connections, {args.duration:g} s "
          f"per run, {args.rounds} rounds; servers: {args.workers} workers x "
          f"{args.server_threads} threads; fechaPago {paid_at}")
    workdir = Path(tempfile.mkdtemp(prefix="pmc-bench-wrk-"))
    running: list[subprocess.Popen] = []
    try:
        with contextlib.ExitStack() as stack:
            pg_url = None if args.skip_postgres else stack.enter_context(
                postgres_database(args.postgres_url))
            stack.callback(lambda: [stop(p) for p in reversed(running)])
            erp_wsdl = None
            if args.erp_latency_ms is not None:
                erp_wsdl = start_erp(workdir, args.erp_latency_ms, running)
                print(f"the adapters ask the bundled ERP ({args.erp_latency_ms} ms a call); "
                      f"bare spyne asks nobody")
            targets = [start_bare(workdir, args.workers, args.server_threads, running),
                       start_product("sqlite", f"sqlite:///{workdir}/bench.sqlite3", workdir,
                                     args.workers, args.server_threads, running,
                                     erp_wsdl=erp_wsdl)]
            if pg_url:
                targets.append(start_product("postgres", pg_url, workdir, args.workers,
                                             args.server_threads, running, erp_wsdl=erp_wsdl))
            if not args.skip_both:  # xmlschema deciding every message too, beside the default
                targets.append(start_product("sqlite/xs", f"sqlite:///{workdir}/both.sqlite3",
                                             workdir, args.workers, args.server_threads,
                                             running, validation="both", erp_wsdl=erp_wsdl))
            print("seeding through AltaFactura:", flush=True)
            customers = ([f"D{i}" for i in range(args.customers)]
                         + [f"P{i}" for i in range(args.payment_customers)])
            for target in targets[1:]:
                seed(target, customers)
            print(f"InformarPago pays invoices of P0..P{args.payment_customers - 1} in order; "
                  "past the pool's end it pays them again: code 4 (already paid), still stored")
            script = write_lua(workdir)
            for operation in OPERATIONS:
                print(f"{operation}:", flush=True)
                serving = targets[1:] if operation == JSON_NOTICE else targets
                warm_up(wrk, script, serving, operation, args, paid_at)
                for round_ in range(1, args.rounds + 1):
                    for target in serving:
                        target.results.setdefault(operation, []).append(
                            measure(wrk, script, target, operation, args, paid_at, round_))
            for operation in OPERATIONS:
                print_table(operation, targets)
        return 0
    except KeyboardInterrupt:
        print("\ninterrupted: stopping the servers", file=sys.stderr)
        return 130
    finally:
        for process in running:  # idempotent: already stopped unless the ExitStack failed
            stop(process)
        if args.keep_logs:
            print(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
