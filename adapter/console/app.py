"""The back office in a browser (``/console/``): the day at a glance, the observed
payments to resolve, the reconciliation, the outboxes, a payment's history -- for the
biller's collections staff. Served by the same process as SOAP and the JSON API, on the
same use cases the command line calls (``pmc-adapter resolve``, ``forwards
--retry-now``...): no rule is written twice.

Who may use it: the ``[operators.NAME]`` of the settings (a password hash, a role:
``viewer`` looks, ``resolver`` also decides), never a SOAP or API caller. A login form
(its own CSRF token, in a cookie and in the form) opens a server-side session: a random
token in an HttpOnly, SameSite=Strict cookie (Secure when the client came over HTTPS),
kept in the database as a digest, ended by logout or after ``console_session_timeout``
idle seconds. Every form carries the session's CSRF token; a POST without it changes
nothing. Failed logins are limited per name and per address (``console_login_attempts``
in 15 minutes). Every login and action is journalled (who, from where, when, what
changed) and logged. Pages are server-rendered (Jinja2, escaped by default) and work
without JavaScript; a strict Content-Security-Policy allows none.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from http.cookies import CookieError, SimpleCookie
from importlib import resources
from typing import Callable, Iterable
from urllib.parse import parse_qs, urlencode

import jinja2

from adapter.config import Settings
from adapter.domain.calendar import BUSINESS_TZ, local_day
from adapter.domain.model import utcnow
from adapter.errors import AdapterError, StorageUnavailable
from adapter.passwords import decoy, verify_password
from adapter.service.billing import BillingService
from adapter.service.observed import DecisionRefused, ObservedPayments
from adapter.service.overview import Overview, outcome_name
from adapter.service.reconciling import Reconciler
from adapter.soap import transport
from adapter.storage.console import ConsoleSession
from adapter.storage.unit_of_work import Storage

log = logging.getLogger(__name__)

PREFIX = "/console"
SESSION_COOKIE = "pmc_console_session"
LOGIN_COOKIE = "pmc_console_login"  # the login form's CSRF token (no session yet)
LOGIN_WINDOW = timedelta(minutes=15)
MAX_FORM_BYTES = 16 * 1024
SECURITY_HEADERS = [
    ("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; "
                                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
]
PAGES = [("today", "/console/", "Today"), ("observed", "/console/observed", "Observed"),
         ("reconciliation", "/console/reconciliation", "Reconciliation"),
         ("outbox", "/console/outbox", "Outbox"), ("payments", "/console/payments", "Payments")]


@dataclass
class _Reply:
    status: str
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)


class _Refused(Exception):
    """Answer with this page instead (a status and a message)."""

    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class _Request:
    environ: dict
    method: str
    path: str
    query: dict[str, str]
    address: str
    secure: bool

    def cookie(self, name: str) -> str | None:
        try:
            cookies = SimpleCookie(self.environ.get("HTTP_COOKIE", ""))
        except CookieError:
            return None
        morsel = cookies.get(name)
        return morsel.value if morsel else None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def _same(given: str | None, expected: str) -> bool:
    return bool(given) and hmac.compare_digest(given.encode("utf-8", "replace"),
                                               expected.encode("utf-8"))


class ConsoleApp:
    def __init__(self, settings: Settings, storage: Storage, billing: BillingService,
                 observed: ObservedPayments, reconciler: Reconciler, overview: Overview,
                 clock: Callable[[], datetime] = utcnow):
        self._settings = settings
        self._operators = dict(settings.operators)
        self._storage = storage
        self._billing = billing
        self._observed = observed
        self._reconciler = reconciler
        self._overview = overview
        self._clock = clock
        self._networks = transport.networks(settings.console_networks
                                            or settings.allowed_networks)
        self._trusted_proxies = transport.networks(settings.trusted_proxies)
        self._timeout = timedelta(seconds=settings.console_session_timeout)
        self._templates = jinja2.Environment(
            loader=jinja2.PackageLoader("adapter.console", "templates"),
            autoescape=True, undefined=jinja2.StrictUndefined)
        self._css = resources.files("adapter.console").joinpath(
            "static", "console.css").read_bytes()

    # -- WSGI --------------------------------------------------------------------------

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        request = None
        try:
            request = self._request(environ)
            reply = self._route(request)
        except _Refused as refused:
            reply = self._page(refused.status, "message.html", None, message=str(refused))
        except StorageUnavailable as error:
            log.error("console: %s", error)
            reply = self._page("503 Service Unavailable", "message.html", None,
                               message="The database does not answer: try again shortly.")
        except Exception:  # a bug: logged whole, shown as little as possible
            log.exception("console: %s %s failed", environ.get("REQUEST_METHOD"),
                          environ.get("PATH_INFO"))
            reply = self._page("500 Internal Server Error", "message.html", None,
                               message="Something went wrong; the log says what.")
        start_response(reply.status, reply.headers + SECURITY_HEADERS)
        return [b"" if environ.get("REQUEST_METHOD") == "HEAD" else reply.body]

    def _request(self, environ: dict) -> _Request:
        query = {key: values[0] for key, values in parse_qs(
            environ.get("QUERY_STRING", ""), keep_blank_values=False,
            max_num_fields=20).items()}
        return _Request(environ, environ.get("REQUEST_METHOD", "GET"),
                        environ.get("PATH_INFO", "") or "/", query,
                        environ.get("REMOTE_ADDR") or "", transport.client_scheme(
                            environ, self._trusted_proxies) == "https")

    def _route(self, request: _Request) -> _Reply:
        if self._networks and not transport.address_in(request.address, self._networks):
            log.warning("console: refused %s %s from %s: not in console_networks",
                        request.method, request.path, request.address)
            raise _Refused("403 Forbidden", "This address may not use the console.")
        path, method = request.path.rstrip("/") or PREFIX, request.method
        if method == "HEAD":
            method = "GET"
        if path == f"{PREFIX}/static/console.css" and method == "GET":
            return _Reply("200 OK", self._css, [("Content-Type", "text/css; charset=utf-8")])
        if path == f"{PREFIX}/login":
            if method == "GET":
                return self._login_form(request)
            if method == "POST":
                return self._login(request, self._form(request))
            raise _Refused("405 Method Not Allowed", "Not here.")
        session, token = self._session(request)
        if session is None:
            return _redirect(f"{PREFIX}/login")
        if method == "POST":
            form = self._form(request)
            if not _same(form.get("csrf"), session.csrf):
                self._journal(session.operator, request, f"POST {path}", False,
                              "refused: no valid form token (CSRF)")
                raise _Refused("403 Forbidden", "This form has expired or did not come from "
                                                "the console: nothing was changed.")
            if path == f"{PREFIX}/logout":
                return self._logout(request, session, token)
            if self._operators[session.operator].role != "resolver":
                self._journal(session.operator, request, f"POST {path}", False,
                              "refused: a viewer may not change anything")
                raise _Refused("403 Forbidden", "Your role (viewer) may look, not change.")
            actions = {f"{PREFIX}/observed/apply": self._apply,
                       f"{PREFIX}/observed/dismiss": self._dismiss,
                       f"{PREFIX}/outbox/retry": self._retry}
            if path in actions:
                return actions[path](request, session, form)
            raise _Refused("404 Not Found", "No such page.")
        if method != "GET":
            raise _Refused("405 Method Not Allowed", "Not here.")
        pages = {PREFIX: self._today, f"{PREFIX}/observed": self._observed_page,
                 f"{PREFIX}/reconciliation": self._reconciliation,
                 f"{PREFIX}/outbox": self._outbox, f"{PREFIX}/payments": self._payments}
        if path not in pages:
            raise _Refused("404 Not Found", "No such page.")
        return pages[path](request, session)

    # -- plumbing ----------------------------------------------------------------------

    def _form(self, request: _Request) -> dict[str, str]:
        media, _ = transport.media_type(request.environ.get("CONTENT_TYPE"))
        if media != "application/x-www-form-urlencoded":
            raise _Refused("415 Unsupported Media Type", "Forms only.")
        try:
            body = transport.read_body(request.environ, MAX_FORM_BYTES)
            fields = parse_qs(body.decode("utf-8"), keep_blank_values=True,
                              max_num_fields=20, strict_parsing=bool(body))
        except (AdapterError, UnicodeDecodeError, ValueError):
            raise _Refused("400 Bad Request", "That form could not be read.") from None
        if any(len(values) > 1 for values in fields.values()):
            raise _Refused("400 Bad Request", "A field came twice.")
        return {key: values[0] for key, values in fields.items()}

    def _page(self, status: str, template: str, session: ConsoleSession | None,
              **context) -> _Reply:
        body = self._templates.get_template(template).render(
            session=session, pages=PAGES, role=self._operators[session.operator].role
            if session else None, **context)
        return _Reply(status, body.encode("utf-8"),
                      [("Content-Type", "text/html; charset=utf-8")])

    def _cookie(self, request: _Request, name: str, value: str, max_age: int | None) -> str:
        parts = [f"{name}={value}", f"Path={PREFIX}", "HttpOnly", "SameSite=Strict"]
        if max_age is not None:
            parts.append(f"Max-Age={max_age}")
        if request.secure:
            parts.append("Secure")
        return "; ".join(parts)

    def _session(self, request: _Request) -> tuple[ConsoleSession | None, str | None]:
        token = request.cookie(SESSION_COOKIE)
        if not token:
            return None, None
        now = self._clock()
        with self._storage.unit_of_work() as uow:
            session = uow.console.session(_digest(token), now - self._timeout, now)
            uow.commit()
        if session is not None and session.operator not in self._operators:
            return None, None  # the operator was removed from the settings
        return session, token

    def _journal(self, operator: str, request: _Request, action: str, ok: bool,
                 detail: str) -> None:
        with self._storage.unit_of_work() as uow:
            uow.console.record(self._clock(), operator, request.address, action, ok, detail)
            uow.commit()
        (log.warning if ok or action == "login" else log.error)(
            "console: %s from %s: %s %s: %s", operator, request.address, action,
            "done" if ok else "refused", detail)

    # -- signing in and out ------------------------------------------------------------

    def _login_form(self, request: _Request, status: str = "200 OK",
                    message: str | None = None) -> _Reply:
        token = secrets.token_urlsafe(32)
        reply = self._page(status, "login.html", None, csrf=token, message=message)
        reply.headers.append(("Set-Cookie", self._cookie(request, LOGIN_COOKIE, token, 3600)))
        return reply

    def _login(self, request: _Request, form: dict[str, str]) -> _Reply:
        name, password = form.get("username", "").strip(), form.get("password", "")
        if not _same(form.get("csrf"), request.cookie(LOGIN_COOKIE) or ""):
            return self._login_form(request, "403 Forbidden",
                                    "This form has expired: sign in again.")
        now = self._clock()
        with self._storage.unit_of_work(read_only=True) as uow:
            failures = uow.console.failed_logins(name, request.address, now - LOGIN_WINDOW)
        if failures >= self._settings.console_login_attempts:
            self._journal(name, request, "login", False, "refused: too many failed attempts")
            return self._login_form(request, "429 Too Many Requests",
                                    "Too many failed attempts: wait a quarter of an hour.")
        operator = self._operators.get(name)
        ok = verify_password(password, operator.password_hash if operator else decoy()) \
            and operator is not None
        if not ok:
            self._journal(name, request, "login", False, "wrong name or password")
            return self._login_form(request, "401 Unauthorized", "Wrong name or password.")
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        with self._storage.unit_of_work() as uow:
            uow.console.purge(now - self._timeout)
            uow.console.open_session(_digest(token), name, csrf, request.address, now)
            uow.commit()
        self._journal(name, request, "login", True, f"signed in ({operator.role})")
        reply = _redirect(f"{PREFIX}/")
        reply.headers.append(("Set-Cookie", self._cookie(request, SESSION_COOKIE, token,
                                                         None)))
        reply.headers.append(("Set-Cookie", self._cookie(request, LOGIN_COOKIE, "", 0)))
        return reply

    def _logout(self, request: _Request, session: ConsoleSession, token: str) -> _Reply:
        with self._storage.unit_of_work() as uow:
            uow.console.close_session(_digest(token))
            uow.commit()
        self._journal(session.operator, request, "logout", True, "signed out")
        reply = _redirect(f"{PREFIX}/login")
        reply.headers.append(("Set-Cookie", self._cookie(request, SESSION_COOKIE, "", 0)))
        return reply

    # -- pages -------------------------------------------------------------------------

    def _day(self, request: _Request) -> date:
        try:
            return date.fromisoformat(request.query["day"]) if "day" in request.query \
                else local_day(self._clock())
        except ValueError:
            raise _Refused("400 Bad Request", "A day is YYYY-MM-DD.") from None

    def _today(self, request: _Request, session: ConsoleSession) -> _Reply:
        day = self._day(request)
        overview = self._overview.day(day)
        return self._page("200 OK", "today.html", session, page="today", day=day,
                          overview=overview, chart=hour_chart)

    def _observed_page(self, request: _Request, session: ConsoleSession,
                       status: str = "200 OK", message: str | None = None,
                       error: str | None = None) -> _Reply:
        biller = request.query.get("biller") or None
        now = self._clock()
        waiting = self._observed.waiting(biller)
        if message is None and request.query.get("done"):
            message = f"Payment {request.query['done']} {request.query.get('action', 'done')}."
        return self._page(status, "observed.html", session, page="observed", waiting=waiting,
                          now=now, message=message, error=error, biller=biller,
                          outcome_name=outcome_name, tz=BUSINESS_TZ)

    def _apply(self, request: _Request, session: ConsoleSession,
               form: dict[str, str]) -> _Reply:
        receipt, invoice = form.get("receipt", ""), form.get("invoice", "").strip()
        reason = form.get("reason", "").strip() or "applied from the console"
        what = f"apply payment {receipt} to invoice {invoice}"
        if not invoice:
            return self._observed_page(request, session, "400 Bad Request",
                                       error=f"Payment {receipt}: name the invoice.")
        try:
            decision = self._observed.apply(receipt, invoice, operator=session.operator,
                                            reason=reason,
                                            customer_id=form.get("customer", "").strip() or None)
        except DecisionRefused as refused:
            self._journal(session.operator, request, "apply", False, f"{what}: {refused}")
            return self._observed_page(request, session, "409 Conflict", error=str(refused))
        self._journal(session.operator, request, "apply", True,
                      f"payment {decision.receipt_id} ({decision.operation_id}) applied to "
                      f"invoice {decision.invoice_id}: {reason}")
        return _redirect(f"{PREFIX}/observed?" + urlencode(
            {"done": decision.receipt_id, "action": f"applied to invoice {invoice}"}))

    def _dismiss(self, request: _Request, session: ConsoleSession,
                 form: dict[str, str]) -> _Reply:
        receipt, reason = form.get("receipt", ""), form.get("reason", "").strip()
        if not reason:
            return self._observed_page(request, session, "400 Bad Request",
                                       error=f"Payment {receipt}: say why it is dismissed.")
        try:
            decision = self._observed.dismiss(receipt, operator=session.operator,
                                              reason=reason)
        except DecisionRefused as refused:
            self._journal(session.operator, request, "dismiss", False,
                          f"dismiss payment {receipt}: {refused}")
            return self._observed_page(request, session, "409 Conflict", error=str(refused))
        self._journal(session.operator, request, "dismiss", True,
                      f"payment {decision.receipt_id} ({decision.operation_id}) dismissed: "
                      f"{reason}")
        return _redirect(f"{PREFIX}/observed?" + urlencode(
            {"done": decision.receipt_id, "action": "dismissed"}))

    def _reconciliation(self, request: _Request, session: ConsoleSession) -> _Reply:
        with self._storage.unit_of_work(read_only=True) as uow:
            files = uow.reports.files(request.query.get("biller") or None)
        biller = request.query.get("biller") or (files[0][0] if files else None)
        day = date.fromisoformat(request.query["day"]) if request.query.get("day") else \
            (files[0][2] - timedelta(days=1) if files else local_day(self._clock()))
        items = self._reconciler.preview(biller, day, day) if biller else []
        return self._page("200 OK", "reconciliation.html", session, page="reconciliation",
                          files=files, biller=biller, day=day, items=items)

    def _outbox(self, request: _Request, session: ConsoleSession,
                message: str | None = None) -> _Reply:
        with self._storage.unit_of_work(read_only=True) as uow:
            erp = uow.forwards.listing("failing", limit=500) + \
                uow.forwards.listing("rejected", limit=500)
            pmc = uow.pmc_deliveries.listing("failing", limit=500) + \
                uow.pmc_deliveries.listing("rejected", limit=500)
        message = message or (f"{request.query['released']} item(s) due now."
                              if request.query.get("released") else None)
        return self._page("200 OK", "outbox.html", session, page="outbox", erp=erp, pmc=pmc,
                          message=message)

    def _retry(self, request: _Request, session: ConsoleSession,
               form: dict[str, str]) -> _Reply:
        destination, item = form.get("destination"), form.get("id", "").strip()
        if destination not in ("erp", "pmc"):
            raise _Refused("400 Bad Request", "No such outbox.")
        with self._storage.unit_of_work() as uow:
            queue = uow.forwards if destination == "erp" else uow.pmc_deliveries
            released = queue.retry_now(self._clock(), [item] if item else None)
            uow.commit()
        self._journal(session.operator, request, "retry", True,
                      f"{released} {destination} item(s) due now"
                      + (f" (of {item})" if item else ""))
        return _redirect(f"{PREFIX}/outbox?" + urlencode({"released": released}))

    def _payments(self, request: _Request, session: ConsoleSession) -> _Reply:
        asked = {key: request.query.get(key, "").strip()
                 for key in ("biller", "operation", "customer", "invoice")}
        rows, status, deliveries, reversals = [], None, [], []
        if any(asked[key] for key in ("operation", "customer", "invoice")):
            with self._storage.unit_of_work(read_only=True) as uow:
                rows = uow.payments.history(asked["biller"] or None,
                                            asked["operation"] or None,
                                            asked["customer"] or None, asked["invoice"] or None)
                operations = {row.operation_id for row in rows}
                deliveries = [item for item in uow.forwards.listing(None, limit=5000)
                              if item.operation_id in operations]
                reversals = [found for found in (uow.reversals.get(row.biller_id,
                                                                   row.operation_id)
                                                 for row in rows) if found is not None]
            if asked["operation"] and rows:
                status = self._billing.payment_status(rows[0].biller_id, asked["operation"])
        return self._page("200 OK", "payments.html", session, page="payments", asked=asked,
                          rows=rows, found=status, deliveries=deliveries,
                          reversals=reversals, tz=BUSINESS_TZ)


def _redirect(location: str) -> _Reply:
    return _Reply("303 See Other", b"", [("Location", location),
                                         ("Content-Type", "text/plain; charset=utf-8")])


def hour_chart(counts: list[int], width: int = 480, height: int = 120) -> str:
    """An SVG bar chart of 24 hourly counts, drawn here (no JavaScript): bars, the hours
    under them, each bar's count in its title. Numbers only go in: nothing to escape."""
    top = max(counts) or 1
    bar = width / 24
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height + 16}" '
             f'width="{width}" height="{height + 16}" role="img" '
             f'aria-label="notices received by hour">']
    for hour, count in enumerate(counts):
        tall = round(height * count / top)
        parts.append(f'<rect x="{hour * bar + 1:.1f}" y="{height - tall}" width="{bar - 2:.1f}" '
                     f'height="{tall}" fill="#2f6f9f"><title>{hour:02d}h: {int(count)}'
                     f'</title></rect>')
        if hour % 3 == 0:
            parts.append(f'<text x="{hour * bar + bar / 2:.1f}" y="{height + 12}" '
                         f'font-size="10" text-anchor="middle" fill="#444">{hour:02d}</text>')
    parts.append("</svg>")
    return "".join(parts)
