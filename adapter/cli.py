"""``pmc-adapter``: the command line.

``serve`` brings the database schema up to date and serves the SOAP service
with gunicorn, delivering the outboxes (payments to the ERP, invoices to PMC's
collection API) from every worker (one machine needs one command). ``worker``
delivers without serving; ``forwards`` shows an outbox; ``import-fac`` loads a
billing base file, ``upload-fac`` sends the next one (``fac-status``: what was sent
and rejected); ``import-cob`` loads the network's payment reports; ``erp-sim``
serves the bundled reference legacy ERP, ``pmc-sim`` a simulator of PMC's
collection API.
"""
from __future__ import annotations

import argparse
import json
import logging
import signal
import sys

from adapter import __version__
from adapter.config import Settings, load_settings
from adapter.errors import (ConfigurationError, RequestTimeout, SchemaOutOfDate,
                            StorageUnavailable)
from adapter.logs import TEXT_FORMAT, use_format
from adapter.storage.db import make_engine, upgrade_schema
from adapter.vocabulary import DESCRIPTIONS, NETWORK_NAMES, in_network_words

log = logging.getLogger("adapter")


def _serve(settings: Settings, args) -> int:
    # before anything imports prometheus_client: every worker counts into this folder
    from adapter.metrics_folder import prepare_multiprocess
    prepare_multiprocess()
    from adapter.api.gateway import refusal_body
    from adapter.app import build, erp_configured, guard_for, make_wsgi_app
    from adapter.checks import cautions
    from adapter.gunicorn_app import serve_wsgi
    from adapter.soap.faults import fault_envelope

    guard_for(settings)  # a bad caller list stops the start, not the first request
    parts = build(settings, schema="upgrade")
    parts.erps.check()
    parts.close()  # workers open their own connections after the fork
    # compiled once here (0.6 s of CPU), inherited by every worker gunicorn forks, and
    # by each one it starts again
    from adapter.soap import contract
    contract.schema()
    for caution in cautions(settings):
        log.warning("%s", caution)
    if not erp_configured(settings):
        log.info("no ERP configured: answering from the billing base only")
    tls = (settings.tls_cert, settings.tls_key) if settings.tls_cert else None
    late = RequestTimeout(f"the request did not arrive within {settings.request_timeout:g} s")
    serve_wsgi(lambda: make_wsgi_app(settings, forward=True), bind=settings.bind,
               workers=settings.workers, threads=settings.threads,
               log_level=settings.log_level, tls=tls, client_ca=settings.tls_client_ca,
               graceful_timeout=settings.graceful_timeout,
               request_timeout=settings.request_timeout,
               max_request_bytes=settings.max_request_bytes,
               timeout_response=fault_envelope(late),
               api_timeout_response=refusal_body(late), log_format=settings.log_format)
    return 0


def _worker(settings: Settings, args) -> int:
    from adapter.app import build

    parts = build(settings, schema="upgrade")
    parts.erps.check()
    workers = parts.outboxes
    if not workers:
        print("pmc-adapter worker: no ERP and no PMC API is configured, nothing to deliver",
              file=sys.stderr)
        return 2

    def stop(*_) -> None:
        for worker in workers:
            worker.request_stop()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for worker in workers:
        worker.start(settings.forward_poll)
    for worker in workers:
        while worker.alive():  # a signal handler runs between two waits
            worker.join(0.5)
    for worker in workers:
        worker.stop()  # the round in flight has ended: release what is still claimed
    return 0


def _forwards(settings: Settings, args) -> int:
    """An outbox: the ERP's (payments by idOperacion), or PMC's API's (``--to pmc``:
    invoices by idFactura)."""
    from adapter.app import build
    from adapter.domain.model import utcnow

    to_pmc = args.to == "pmc"
    storage = build(settings).storage

    def queue(uow):
        return uow.pmc_deliveries if to_pmc else uow.forwards

    if args.retry_now is not None:
        with storage.unit_of_work() as uow:
            released = queue(uow).retry_now(utcnow(), args.retry_now or None)
            uow.commit()
        what, named = ("PMC deliveries", "invoices ") if to_pmc else ("forward(s)", "")
        print(f"{released} pending {what} due now"
              + (f" (of {named}{', '.join(args.retry_now)})" if args.retry_now else ""))
        return 0

    with storage.unit_of_work(read_only=True) as uow:
        rows = queue(uow).listing(args.status, limit=args.limit)
    if args.json:
        print(json.dumps([{**row.__dict__, **{key: value.isoformat() for key, value in
                                              row.__dict__.items() if hasattr(value, "isoformat")}}
                          for row in rows], indent=2))
        return 0
    names = NETWORK_NAMES
    if to_pmc:
        heading, kind_width = f"{names['invoice_id']:<20} {names['customer_id']:<19}", 6
    else:
        heading, kind_width = f"{names['operation_id']:<36}", 8
    print(f"{heading} {names['biller_id']:<7} {'kind':<{kind_width}} {'state':<9} {'tries':>5}  "
          f"{'next try / delivered (UTC)':<26} detail")
    for row in rows:
        key = (f"{row.invoice_id:<20} {row.customer_id:<19}" if to_pmc
               else f"{row.operation_id:<36}")
        state = "failing" if row.status == "pending" and row.attempts else row.status
        when = row.delivered_at if row.status == "delivered" else row.next_attempt_at
        detail = row.reference if row.status == "delivered" else (row.last_error or "")
        print(f"{key} {row.biller_id:<7} {row.kind:<{kind_width}} {state:<9} "
              f"{row.attempts:>5}  {when:%Y-%m-%d %H:%M:%S}{'':<7} {detail}")
    return 0


def _import_fac(settings: Settings, args) -> int:
    from adapter.app import build
    from adapter.files.fac import FacReader, InvalidFacFile, file_lines

    readers: list[FacReader] = []

    def read():
        """The file streamed again for each attempt: the invoices it yields are those
        that reading checked (the trailer at its end; a fault rolls back them all)."""
        reader = FacReader(file_lines(args.file))
        readers.append(reader)
        return reader.invoices()

    try:
        header = FacReader(file_lines(args.file))  # refused before the database is touched
        header.close()
        if not settings.serves(header.biller_id):
            print(f"pmc-adapter import-fac: biller {header.biller_id} is not served here "
                  "(PMC_ADAPTER_BILLERS)", file=sys.stderr)
            return 2
        counts = build(settings).billing.import_billing_base(read)
    except OSError as error:
        print(f"pmc-adapter import-fac: {error}", file=sys.stderr)
        return 2
    except InvalidFacFile as error:
        print(f"pmc-adapter import-fac: {args.file} refused, nothing imported: {error}",
              file=sys.stderr)
        return 2
    fac = readers[-1]
    for rejected in fac.rejected:
        print(f"rejected line {rejected.line}: {rejected.reason}")
    print(f"biller {fac.biller_id}, file of {fac.day:%Y-%m-%d}: "
          + ", ".join(f"{count} {what}" for what, count in counts.items())
          + f", {len(fac.rejected)} rejected")
    return 1 if fac.rejected else 0


def _import_cob(settings: Settings, args) -> int:
    """Exit 0: every file imported whole; 1: some lines rejected; 2: a file refused (or
    unreadable) -- the others are still imported."""
    from adapter.app import build

    return _import_reports(build(settings).reports, args.files)


def _fetch_cob(settings: Settings, args) -> int:
    """Download the reports not imported yet from the network's FTPS server, then import
    them. Exit codes as import-cob's; 2 also when a server cannot be reached."""
    from adapter.app import build
    from adapter.files.ftps import Account

    billers = args.empresa or sorted(settings.served_billers)
    if not billers:
        print("pmc-adapter fetch-cob: name the billers (--empresa, or PMC_ADAPTER_BILLERS)",
              file=sys.stderr)
        return 2
    parts = build(settings)
    worst = 0
    for biller in billers:
        account = parts.ftps_account(biller)
        if account is None:
            print(f"pmc-adapter fetch-cob: no cob_ftp_host for biller {biller}",
                  file=sys.stderr)
            worst = 2
            continue
        fetched = parts.fetcher.fetch(biller, account, args.days)
        if fetched.error:
            print(f"pmc-adapter fetch-cob: biller {biller}: {fetched.error}", file=sys.stderr)
            worst = 2
        if not fetched.paths:
            print(f"biller {biller}: no new report")
        worst = max(worst, _import_reports(parts.reports, [str(path) for path in fetched.paths]))
        # the same folder holds the rejection files of the billing base files sent
        worst = max(worst, _bring_back_rejections(parts.uploads, biller, Account(account)))
    return worst


def _bring_back_rejections(uploads, biller: str, account, at=None) -> int:
    """Look for the rejection files of the biller's files sent; 2 when the server
    cannot be reached."""
    from adapter.files.ftps import FetchError

    try:
        found = uploads.bring_back_rejections(biller, account, at)
    except FetchError as error:
        print(f"pmc-adapter: biller {biller}: looking for rejection files: {error}",
              file=sys.stderr)
        return 2
    for rejection in found:
        print(f"{rejection.name}: {rejection.file} rejected "
              + ("whole: its invoices go again in the next file" if rejection.whole else
                 f"in part: {rejection.marked} invoice(s)")
              + (f" ({rejection.ignored} line(s) name no invoice of it)"
                 if rejection.ignored and not rejection.whole else ""))
    return 0


def _upload_fac(settings: Settings, args) -> int:
    """Exit 0: sent, or nothing to send; 1: rejected invoices wait for a correction; 2:
    could not run (nothing sent)."""
    from datetime import datetime
    from pathlib import Path

    from adapter.app import build
    from adapter.domain.calendar import BUSINESS_TZ
    from adapter.files.ftps import Account
    from adapter.files.invoice_csv import read_invoice_csv
    from adapter.service.uploading import UploadError

    billers = args.empresa or sorted(settings.served_billers)
    if not billers:
        print("pmc-adapter upload-fac: name the biller (--empresa, or PMC_ADAPTER_BILLERS)",
              file=sys.stderr)
        return 2
    if args.invoices and len(billers) > 1:
        print("pmc-adapter upload-fac: an invoice list (--invoices) is one biller's: name it "
              "(--empresa)", file=sys.stderr)
        return 2
    at = None
    if args.at:
        at = datetime.fromisoformat(args.at)
        if at.tzinfo is None:
            at = at.replace(tzinfo=BUSINESS_TZ)  # the network's clock
    if args.output and not Path(args.output).is_dir():
        print(f"pmc-adapter upload-fac: no folder {args.output}", file=sys.stderr)
        return 2
    parts = build(settings)
    uploads = parts.uploads
    worst = 0
    for biller in billers:
        options = parts.ftps_account(biller)
        account = Account(options) if options else None
        if account is None and not args.output:
            print(f"pmc-adapter upload-fac: no cob_ftp_host for biller {biller} (the account "
                  "the billing base goes up to)", file=sys.stderr)
            worst = 2
            continue
        if account is not None:
            worst = max(worst, _bring_back_rejections(uploads, biller, account, at))
        source = (lambda path=args.invoices, b=biller: read_invoice_csv(path, b)) \
            if args.invoices else None
        try:
            done = uploads.upload(biller, None if args.output else account, source, at,
                                  Path(args.output) if args.output else None)
        except (UploadError, OSError, ValueError) as error:
            print(f"pmc-adapter upload-fac: biller {biller}: {error}", file=sys.stderr)
            print(f"biller {biller}: nothing sent")
            worst = 2
            continue
        pending = uploads.pending_rejections(biller)
        for item in pending:
            print(f"{item.file}: invoice {item.invoice_id} of client {item.customer_id} "
                  f"rejected ({item.reason}): sent again once corrected")
        if pending:
            worst = max(worst, 1)
        what = (f"{done.records} invoice(s): {done.new} new, {done.records - done.new} "
                f"changed; total {done.total}")
        if done.state == "sent":
            print(f"biller {biller}: sent {done.name} for {done.day:%Y-%m-%d} ({what})")
        elif done.state == "built":
            print(f"biller {biller}: built {done.path} for {done.day:%Y-%m-%d} ({what}); "
                  "nothing uploaded")
        elif done.state == "busy":
            print(f"biller {biller}: nothing sent by this run: {done.name} is being sent by "
                  f"another one (since {done.since:%Y-%m-%d %H:%M:%S} UTC)")
        elif done.state == "limit":
            print(f"pmc-adapter upload-fac: biller {biller}: the {done.files} files of "
                  f"{done.day:%Y-%m-%d} are sent (fac_max_files_per_day): nothing sent",
                  file=sys.stderr)
            print(f"biller {biller}: nothing sent")
            worst = 2
        else:
            print(f"biller {biller}: nothing to send for {done.day:%Y-%m-%d} (nothing "
                  "changed since the last file sent)")
    return worst


def _fac_status(settings: Settings, args) -> int:
    billers = args.empresa or sorted(settings.served_billers)
    if not billers:
        print("pmc-adapter fac-status: name the biller (--empresa, or PMC_ADAPTER_BILLERS)",
              file=sys.stderr)
        return 2
    from adapter.app import build

    uploads = build(settings).uploads
    report = {}
    for biller in billers:
        files, pending = uploads.status(biller, args.limit)
        report[biller] = {
            "files": [{"name": f.name, "day": f.day.isoformat(), "state": f.state,
                       "records": f.records, "total": str(f.total),
                       "sent_at": f.sent_at.isoformat() if f.sent_at else None,
                       "error": f.error, "rejection": f.rejection,
                       "rejected": f.rejected, "rejected_whole": f.whole} for f in files],
            "pending_rejections": [{"file": p.file, "customer_id": p.customer_id,
                                    "invoice_id": p.invoice_id, "reason": p.reason}
                                   for p in pending]}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for biller, state in report.items():
        print(f"biller {biller}:")
        if not state["files"]:
            print("  no file sent yet")
        for f in state["files"]:
            rejection = ""
            if f["rejection"]:
                rejection = (f"  {f['rejection']}: " + ("rejected whole" if f["rejected_whole"]
                                                        else f"{f['rejected']} rejected"))
            detail = f["sent_at"] or f["error"] or ""
            print(f"  {f['name']:<20} {f['state']:<7} {f['records']:>9} {f['total']:>18}  "
                  f"{detail}{rejection}")
        for p in state["pending_rejections"]:
            print(f"  waiting for a correction: invoice {p['invoice_id']} of client "
                  f"{p['customer_id']} ({p['reason']}), rejected in {p['file']}")
    return 0


def _import_reports(importer, paths: list[str]) -> int:
    from adapter.files.cob import InvalidCobFile

    worst = 0
    for path in paths:
        try:
            with _progress(path) as progress:
                result = importer.import_file(path, progress)
        except OSError as error:
            print(f"pmc-adapter: {error}", file=sys.stderr)
            worst = 2
            continue
        except InvalidCobFile as error:
            print(f"pmc-adapter: {path} refused, nothing imported: {error}",
                  file=sys.stderr)
            worst = 2
            continue
        for rejected in result.rejected:
            print(f"{result.name}: rejected line {rejected.line}: {rejected.field}: "
                  f"{rejected.reason}")
        if result.already_imported_as is not None:
            print(f"{result.name}: already imported (as {result.already_imported_as}), "
                  "nothing changed")
        else:
            print(f"{result.name}: biller {result.biller_id}, report of {result.day:%Y-%m-%d}: "
                  f"{result.records} records: {result.created} new, {result.corrected} "
                  f"corrected, {result.unchanged} unchanged, {len(result.rejected)} rejected")
        if result.rejected:
            worst = max(worst, 1)
    return worst


class _progress:
    """A progress bar (tqdm) on a terminal; elsewhere a log line every 100,000 records."""

    def __init__(self, path: str):
        self._path = path
        self._bar = None
        self._logged = 0

    def __enter__(self):
        if sys.stderr.isatty():
            from tqdm import tqdm
            self._bar = tqdm(desc=self._path, unit=" records", unit_scale=True, leave=False)
        return self

    def __call__(self, done: int) -> None:
        if self._bar is not None:
            self._bar.update(done - self._bar.n)
        elif done // 100_000 > self._logged // 100_000:
            logging.getLogger("adapter.cli").info("%s: %d records stored", self._path, done)
        self._logged = done

    def __exit__(self, *exc_info) -> None:
        if self._bar is not None:
            self._bar.close()


def _reconcile(settings: Settings, args) -> int:
    """Exit 0 when nothing needs attention, 1 otherwise."""
    import csv

    from adapter.app import build
    from adapter.domain.calendar import local_day, previous_business_day
    from adapter.domain.model import utcnow

    if args.date and (args.first or args.last):
        print("pmc-adapter reconcile: --date or --from/--to, not both", file=sys.stderr)
        return 2
    day = args.date or previous_business_day(local_day(utcnow()))
    first, last = args.first or args.date or day, args.last or args.date or day
    if first > last:
        print("pmc-adapter reconcile: --from is after --to", file=sys.stderr)
        return 2
    reconciler = build(settings).reconciler
    billers = args.empresa or sorted(settings.served_billers) or reconciler.billers()
    closes = [reconciler.close(biller, first, last) for biller in billers]
    rows = [_item_row(close.biller_id, item) for close in closes for item in close.items]
    if args.format == "json":
        print(json.dumps({"from": first.isoformat(), "to": last.isoformat(), "billers": [
            {NETWORK_NAMES["biller_id"]: close.biller_id, "recorded_now": close.recorded,
             "summary": _summary(close), "items": [_item_row(close.biller_id, item)
                                                   for item in close.items]}
            for close in closes]}, indent=2, default=str))
    elif args.format == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=list(_item_row("", None)))
        writer.writeheader()
        writer.writerows(rows)
    else:
        for close in closes:
            span = f"{first}" if first == last else f"{first} to {last}"
            print(f"{NETWORK_NAMES['biller_id']} {close.biller_id}, payments of {span}"
                  + (f" ({close.recorded} recorded from the report now)" if close.recorded
                     else ""))
            print(f"  {'state':<28} {'channel':<7} {'count':>6} {'total':>16}")
            for entry in _summary(close):
                print(f"  {entry['state']:<28} {entry['channel']:<7} {entry['count']:>6} "
                      f"{entry['total']:>16}")
            attention = close.needs_attention
            print(f"  needing attention: {len(attention)}")
            for item in attention:
                row = _item_row(close.biller_id, item)
                print(f"    {row['state']}: {row['day']} {row['customer']} {row['invoice']} "
                      f"report {row['report_amount'] or '-'} ({row['channel'] or '-'} "
                      f"{row['control'] or '-'}), notice {row['operation_id'] or '-'} "
                      f"{row['notice_amount'] or '-'} {row['currency'] or ''}: {row['why']}")
    return 1 if any(close.needs_attention for close in closes) else 0


def _item_row(biller_id: str, item) -> dict:
    line = item.line if item else None
    notice = item.notice if item else None
    return {
        NETWORK_NAMES["biller_id"]: biller_id, "day": item.day.isoformat() if item else "",
        "state": item.state.value if item else "",
        "channel": (line.channel if line else notice.channel if notice else "") or "",
        "customer": (line or notice).customer_id if item else "",
        "invoice": (line or notice).invoice_id if item else "",
        "report_amount": str(line.amount) if line else "",
        "control": line.control if line else "",
        "recorded_as": (line.recorded_as or "") if line else "",
        "operation_id": notice.operation_id if notice else "",
        "notice_amount": str(notice.amount) if notice else "",
        "currency": notice.currency.value if notice else "",
        "notice_day": notice.paid_on.isoformat() if notice else "",
        "why": item.why if item else ""}


def _summary(close) -> list[dict]:
    from collections import Counter
    from decimal import Decimal

    counts, totals = Counter(), {}
    for item in close.items:
        line_or_notice = item.line or item.notice
        channel = (item.line.channel if item.line else item.notice.channel) or "-"
        key = (item.state.value, channel)
        counts[key] += 1
        totals[key] = totals.get(key, Decimal("0.00")) + line_or_notice.amount
    return [{"state": state, "channel": channel, "count": counts[(state, channel)],
             "total": str(totals[(state, channel)])}
            for state, channel in sorted(counts)]


def _charges(settings: Settings, args) -> int:
    import csv
    from datetime import date

    from adapter.app import build
    from adapter.domain.calendar import BUSINESS_TZ

    try:
        year, month = map(int, args.month.split("-"))
        date(year, month, 1)
    except ValueError:
        print(f"pmc-adapter charges: --month is YYYY-MM, not {args.month!r}", file=sys.stderr)
        return 2
    months = build(settings).charges.month(
        year, month, args.empresa or sorted(settings.served_billers))
    rows = [{"biller_id": biller, "query_id": charge.query.query_id,
             "asked_at": charge.query.asked_at.astimezone(BUSINESS_TZ).isoformat(
                 timespec="seconds"),
             "customer_id": charge.query.customer_id,
             "invoice_id": charge.query.invoice_id or "", "outcome": charge.query.outcome,
             "billable": "yes" if charge.billable else "no",
             "operation_id": charge.payment.operation_id if charge.payment else "",
             "rule": charge.rule}
            for biller, charges in months.items() for charge in charges]
    if args.format == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=list(in_network_words(
            rows[0] if rows else {"biller_id": ""})))
        writer.writeheader()
        writer.writerows(map(in_network_words, rows))
        return 0
    for biller, charges in months.items():
        billable = sum(charge.billable for charge in charges)
        print(f"{NETWORK_NAMES['biller_id']} {biller}, debt queries of {args.month}: "
              f"{len(charges)} queries, {billable} billable (ended in a payment), "
              f"{len(charges) - billable} not")
        for row in rows:
            if row["biller_id"] == biller:
                print(f"  {row['query_id']:<36} {row['asked_at']:<25} {row['customer_id']:<19} "
                      f"{row['invoice_id'] or '-':<20} {row['billable']:<3} "
                      f"{row['operation_id'] or '-'} {row['rule']}")
    return 0


def _observed_payments(settings: Settings):
    from adapter.app import build

    return build(settings).observed


def _observed(settings: Settings, args) -> int:
    from adapter.domain.calendar import BUSINESS_TZ
    from adapter.domain.model import utcnow

    waiting = _observed_payments(settings).waiting(args.empresa)
    now = utcnow()
    rows = [{"receipt_id": item.receipt_id, "biller_id": item.notice.biller_id,
             "operation_id": item.notice.operation_id, "origin": item.origin,
             "customer_id": item.notice.customer_id, "invoice_id": item.notice.invoice_id,
             "amount": str(item.notice.amount), "currency": item.notice.currency.value,
             "paid_at": item.notice.paid_at.astimezone(BUSINESS_TZ).isoformat(),
             "age_days": (now - item.received_at).days,
             "why": f"{int(item.outcome)} {DESCRIPTIONS[item.outcome]}"} for item in waiting]
    if args.json:
        print(json.dumps([in_network_words(row) for row in rows], indent=2))
        return 0
    print(f"{len(rows)} observed payment(s) waiting for a decision")
    for row in rows:
        print(f"  {row['receipt_id']:<22} {row['biller_id']} {row['operation_id']:<20} "
              f"{row['origin']:<6} {row['customer_id']:<19} {row['invoice_id']:<20} "
              f"{row['amount']:>14} {row['currency']} {row['age_days']:>4} d  {row['why']}")
    return 0


def _resolve(settings: Settings, args) -> int:
    from adapter.service.observed import DecisionRefused

    if bool(args.apply_to) == bool(args.dismiss):
        print("pmc-adapter resolve: --apply-to INVOICE or --dismiss, one of them",
              file=sys.stderr)
        return 2
    observed = _observed_payments(settings)
    try:
        if args.dismiss:
            decision = observed.dismiss(args.id, operator=args.operator,
                                        reason=args.reason or "")
        else:
            decision = observed.apply(args.id, args.apply_to, operator=args.operator,
                                      reason=args.reason or "applied by hand",
                                      customer_id=args.customer)
    except DecisionRefused as error:
        print(f"pmc-adapter resolve: refused: {error}", file=sys.stderr)
        return 1
    print(f"payment {decision.receipt_id} ({decision.operation_id}) {decision.action}"
          + (f" to invoice {decision.invoice_id}" if decision.invoice_id else ""))
    return 0


def _check_config(settings: Settings, args) -> int:
    """Exit 0: everything answers; 1: a problem (each listed); 2: the configuration
    itself is wrong (said by main, before this runs)."""
    from adapter.checks import cautions, check_all, masked_settings

    print("effective settings (secrets masked):")
    print(json.dumps(masked_settings(settings), indent=2, default=str))
    findings = check_all(settings)
    for finding in findings:
        mark = "ok  " if finding.ok else "FAIL"
        print(f"{mark} {finding.what}: {finding.problem or finding.detail}")
    for caution in cautions(settings):
        print(f"WARN {caution}")
    problems = [finding for finding in findings if not finding.ok]
    print(f"{len(problems)} problem(s)")
    return 1 if problems else 0


def _upgrade(settings: Settings, args) -> int:
    applied = upgrade_schema(make_engine(settings.database_url))
    print(f"schema up to date; migrations applied: {', '.join(applied) or 'none'}")
    return 0


def _pmc_sim(_settings: None, args) -> int:
    from adapter.sim import pmc

    pmc.serve(args.bind, args.token, args.state)
    return 0


def _erp_sim(_settings: None, args) -> int:
    from adapter.sim import erp

    try:
        erp.load_items(args.invoices)
    except (OSError, ValueError) as error:
        print(f"pmc-adapter erp-sim: cannot load invoices: {error}", file=sys.stderr)
        return 2
    erp.serve(args.bind, args.invoices, latency_ms=args.latency_ms,
                 fail_rate=args.fail_rate, credentials=args.require_auth, state_file=args.state)
    return 0


def _iso_date(text: str):
    from datetime import date
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _operator_password(_settings: None, args) -> int:
    """Read a password (a prompt on a terminal, else the first line of standard input)
    and print its hash, for an [operators.NAME] section's password_hash."""
    import getpass

    from adapter.passwords import hash_password

    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            print("pmc-adapter operator-password: the two differ", file=sys.stderr)
            return 2
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < 10:
        print("pmc-adapter operator-password: a password has at least 10 characters",
              file=sys.stderr)
        return 2
    print(hash_password(password))
    return 0


def _iso_datetime(text: str) -> str:
    from datetime import datetime
    try:
        datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date and time (YYYY-MM-DDTHH:MM): "
                                         f"{text!r}") from None
    return text


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

    worker = commands.add_parser("worker", help="deliver the outboxes (payments to the ERP, "
                                 "invoices to PMC's API), without serving HTTP")
    worker.set_defaults(run=_worker)

    forwards = commands.add_parser(
        "forwards", help="list an outbox: payments and reversals to the ERP, or (--to pmc) "
                         "invoices to PMC's collection API")
    forwards.add_argument("--to", choices=["erp", "pmc"], default="erp",
                          help="which outbox (default: the ERP's)")
    forwards.add_argument("--status", choices=["pending", "failing", "delivered", "rejected"])
    forwards.add_argument("--limit", type=int, default=100)
    forwards.add_argument("--json", action="store_true")
    forwards.add_argument("--retry-now", nargs="*", metavar="ID",
                          help="make the pending items (all, or of these idOperacion; with "
                               "--to pmc, of these idFactura) due now, whatever their backoff")
    forwards.set_defaults(run=_forwards)

    fac = commands.add_parser("import-fac", help="load a billing base file (FACnnnn.DDMMAA)")
    fac.add_argument("file")
    fac.set_defaults(run=_import_fac)

    cob = commands.add_parser("import-cob",
                              help="load the network's payment reports (COBnnnn.DDMMAA)")
    cob.add_argument("files", nargs="+", metavar="FILE")
    cob.set_defaults(run=_import_cob)

    fetch = commands.add_parser(
        "fetch-cob", help="download the payment reports not imported yet (FTPS) and import "
                          "them")
    fetch.add_argument("--biller", "--empresa", dest="empresa", action="append",
                       help="this biller only (repeatable; default: every one served)")
    fetch.add_argument("--days", type=int, help="business days to look back (default: "
                                                "cob_fetch_days)")
    fetch.set_defaults(run=_fetch_cob)

    upload = commands.add_parser(
        "upload-fac", help="build the next billing base file (FACnnnn.DDMMAA.N) from what "
                           "changed, upload it (FTPS), bring back rejections")
    upload.add_argument("--biller", "--empresa", dest="empresa", action="append",
                        help="this biller only (repeatable; default: every one served)")
    upload.add_argument("--invoices", metavar="CSV",
                        help="the biller's invoice list (the columns of "
                             "scripts/demo-erp-invoices.csv), beside those created online")
    upload.add_argument("--at", metavar="ISO-DATETIME", type=_iso_datetime,
                        help="run as if at this moment (Buenos Aires time unless it says)")
    upload.add_argument("--output", metavar="DIR",
                        help="write the file in this folder and upload nothing")
    upload.set_defaults(run=_upload_fac)

    status = commands.add_parser("fac-status", help="the billing base files sent, and what "
                                                    "was rejected")
    status.add_argument("--biller", "--empresa", dest="empresa", action="append",
                        help="this biller only (repeatable; default: every one served)")
    status.add_argument("--limit", type=int, default=50, help="files shown (newest first)")
    status.add_argument("--json", action="store_true", help="JSON instead of a table")
    status.set_defaults(run=_fac_status)

    operator = commands.add_parser(
        "operator-password", help="hash an operator's password (read from standard input, "
                                  "or asked on a terminal) for [operators.NAME]")
    operator.set_defaults(run=_operator_password)

    reconcile = commands.add_parser(
        "reconcile", help="close business days: the payment reports against the notices")
    reconcile.add_argument("--date", type=_iso_date, help="payments of this day (default: "
                           "the previous business day)")
    reconcile.add_argument("--from", dest="first", type=_iso_date)
    reconcile.add_argument("--to", dest="last", type=_iso_date)
    reconcile.add_argument("--biller", "--empresa", dest="empresa", action="append",
                           help="this biller only (repeatable; default: every one served)")
    reconcile.add_argument("--format", choices=["table", "csv", "json"], default="table")
    reconcile.set_defaults(run=_reconcile)

    charges = commands.add_parser(
        "charges", help="the month's debt queries, billable (ended in a payment) or not")
    charges.add_argument("--month", required=True, help="YYYY-MM")
    charges.add_argument("--biller", "--empresa", dest="empresa", action="append",
                         help="this biller only (repeatable; default: every one served)")
    charges.add_argument("--format", choices=["table", "csv"], default="table")
    charges.set_defaults(run=_charges)

    observed = commands.add_parser(
        "observed", help="list the observed payments waiting for a person's decision")
    observed.add_argument("--biller", "--empresa", dest="empresa", help="this biller only")
    observed.add_argument("--json", action="store_true")
    observed.set_defaults(run=_observed)

    resolve = commands.add_parser(
        "resolve", help="apply an observed payment to an invoice, or dismiss it (once)")
    resolve.add_argument("id", metavar="ID", help="the payment's idRecibo")
    resolve.add_argument("--apply-to", metavar="INVOICE", help="an open invoice of its biller")
    resolve.add_argument("--customer", help="the invoice's client, if not the payment's")
    resolve.add_argument("--dismiss", action="store_true", help="close it without applying")
    resolve.add_argument("--reason", help="why (required to dismiss)")
    resolve.add_argument("--operator", required=True, help="who decides")
    resolve.set_defaults(run=_resolve)

    check = commands.add_parser(
        "check-config", help="validate the configuration and what it names, without starting")
    check.set_defaults(run=_check_config)

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

    pmc_sim = commands.add_parser(
        "pmc-sim", help="serve the bundled simulator of PMC's collection API")
    pmc_sim.add_argument("--bind", default="127.0.0.1:8091")
    pmc_sim.add_argument("--token", required=True,
                         help="the Bearer token it accepts (the adapter's pmc_api_token)")
    pmc_sim.add_argument("--state", help="JSON file keeping its invoices across restarts")
    pmc_sim.set_defaults(run=_pmc_sim)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=TEXT_FORMAT)
    # stand-ins and a hashing tool: not the adapter's settings
    if args.command in ("erp-sim", "pmc-sim", "operator-password"):
        return args.run(None, args)
    try:
        # --bind, --workers, --threads: checked as the same keys of the file are
        settings = load_settings(args.config, overrides={
            key: getattr(args, key, None) for key in ("bind", "workers", "threads")})
        use_format(settings.log_format)
        return args.run(settings, args)
    except ConfigurationError as error:
        print(f"pmc-adapter: configuration error: {error}", file=sys.stderr)
        return 2
    except SchemaOutOfDate as error:
        print(f"pmc-adapter {args.command}: {error}: `pmc-adapter upgrade-schema` creates or "
              "migrates it (serve and worker do it when they start)", file=sys.stderr)
        return 2
    except StorageUnavailable as error:
        print(f"pmc-adapter {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
