"""A gunicorn worker that lets a thread see a request only once all of it has arrived.

gunicorn's gthread worker hands a connection to a thread, which then reads the
request from the socket: a client that trickles or stalls holds that thread,
and a few dozen such clients hold them all. This worker reads each HTTP/1.1
request -- headers and body, and the TLS handshake before them -- in the
worker's event loop, without blocking, into a buffer of its connection. The
thread gets the connection once the request is complete and parses it from
memory, so a thread only ever waits for the application.

A request has ``request_timeout`` seconds to arrive, from the moment the
connection starts waiting for it (accepted, or the first byte of the next
request on a kept-alive connection). A client that sent part of a request by
then gets ``timeout_response`` and the connection is closed; one that sent
nothing is closed. Kept-alive connections between requests keep gunicorn's
``keepalive`` timeout.

The loop only decides *when* a request is complete (:class:`RequestFraming`);
what the bytes mean is still for gunicorn's parser to say. Whatever the loop
cannot make sense of is handed over as it is, for the parser to answer its
400, and such a connection is never reused.

Parameters are class attributes: :func:`adapter.gunicorn_app.serve_wsgi`
passes gunicorn a subclass carrying them. Built on gunicorn 27's
``ThreadWorker`` (its loop, ``enqueue_req``, ``handle``, ``keepalived_conns``).
"""
from __future__ import annotations

import errno
import heapq
import itertools
import re
import selectors
import socket
import ssl
import threading
import time
from functools import partial

from gunicorn import http, util
from gunicorn.http.errors import LimitRequestHeaders, NoMoreData
from gunicorn.sock import ssl_context
from gunicorn.workers.gthread import STOP_KEEPALIVE_LINGER, TConn, ThreadWorker

from adapter.soap.transport import CLIENT_SUBJECT, certificate_subject

#: Longest request head (request line and headers) read before giving up on it.
HEAD_LIMIT = 16 * 1024
#: gunicorn's own limit on a chunk-size line (its default limit_request_field_size).
CHUNK_LINE_LIMIT = 8190
#: A chunked body is cut this far past max_request_bytes, not at it: whoever reads
#: it (the gateway reads 64 KiB at a time) then finds more than the cap and refuses
#: the request, instead of running out of bytes and dropping the connection.
CHUNKED_SLACK = 64 * 1024
RECV_SIZE = 64 * 1024
#: Connections accepted per wake-up (gunicorn accepts one): a burst of clients
#: is taken in without a loop turn each.
ACCEPT_BATCH = 32
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
#: After a last answer, how long and how much the loop reads and discards before
#: closing: closing with unread bytes would make the kernel send a reset, which
#: can destroy that answer before the client reads it (RFC 9112 section 9.6).
LINGER_SECONDS = 2.0
LINGER_BYTES = 64 * 1024
#: A thread writing a response gives up on a client that reads nothing for
#: max(request_timeout, this) seconds: such a client must not hold a thread either.
MIN_SEND_TIMEOUT = 30.0

_HEX = re.compile(rb"[0-9A-Fa-f]+")
# the client certificate's subject of the request this thread runs
_PEER = threading.local()

# What RequestFraming.feed says about the buffer.
INCOMPLETE = "incomplete"
COMPLETE = "complete"
OVERSIZED = "oversized"        # body over the cap: the application refuses it from the headers
MALFORMED = "malformed"        # framing the loop cannot follow: the parser refuses it
HEAD_TOO_LARGE = "head too large"

# Where a connection is.
READING, BUSY, IDLE, LINGERING, CLOSED = "reading", "busy", "idle", "lingering", "closed"


class RequestFraming:
    """Where the HTTP/1.1 request at the start of a buffer ends.

    :meth:`feed` is called with the whole buffer each time it grows, and
    resumes where it stopped.
    """

    def __init__(self, max_body: int):
        self.max_body = max_body
        self._body_start: int | None = None
        self.expect_continue = False  # set once the head is read, if it asks
        self._end: int | None = None  # known once the headers give a Content-Length
        self._chunked = False
        self._scanned = 0
        self._phase = "size"          # chunked: size line, data, CRLF after data, trailers
        self._pos = 0
        self._left = 0
        self._decoded = 0

    def feed(self, buf: bytearray) -> str:
        if self._body_start is None:
            end = buf.find(b"\r\n\r\n", max(0, self._scanned - 3))
            head = buf if end < 0 else buf[:end]
            if head.count(b"\n") != head.count(b"\r\n"):
                return MALFORMED  # a bare LF: such a head never ends the way it is read here
            if end < 0:
                self._scanned = len(buf)
                return HEAD_TOO_LARGE if len(buf) > HEAD_LIMIT else INCOMPLETE
            if end > HEAD_LIMIT:
                return HEAD_TOO_LARGE
            self._body_start = self._pos = end + 4
            verdict = self._read_head(bytes(buf[:end]))
            if verdict is not None:
                return verdict
        if self._chunked:
            return self._feed_chunks(buf)
        return COMPLETE if len(buf) >= self._end else INCOMPLETE

    def _read_head(self, head: bytes) -> str | None:
        lines = head.removeprefix(b"\r\n").split(b"\r\n")
        version = lines[0].rsplit(b" ", 1)[-1]
        lengths, codings = [], []
        for line in lines[1:]:
            if line[:1] in (b" ", b"\t"):
                return MALFORMED  # obsolete line folding
            name, colon, value = line.partition(b":")
            if not colon:
                continue  # the parser refuses it
            name, value = name.strip().lower(), value.strip(b" \t")
            if name == b"content-length":
                lengths.append(value)
            elif name == b"transfer-encoding":
                codings += [coding.strip(b" \t").lower() for coding in value.split(b",")]
            elif name == b"expect":
                self.expect_continue = (value.lower() == b"100-continue"
                                        and version == b"HTTP/1.1")
        if codings:
            if lengths or codings[-1] != b"chunked" or codings.count(b"chunked") != 1:
                return MALFORMED
            self._chunked = True
            return None
        if len(lengths) > 1 or (lengths and not lengths[0].isdigit()):
            return MALFORMED
        length = int(lengths[0]) if lengths else 0
        if length > self.max_body:
            return OVERSIZED
        self._end = self._body_start + length
        return None

    def _feed_chunks(self, buf: bytearray) -> str:
        while True:
            if self._pos - self._body_start > 2 * self.max_body + CHUNKED_SLACK:
                return OVERSIZED  # tiny chunks with long extensions: all framing, no body
            if self._phase == "size":
                end = buf.find(b"\r\n", self._pos)
                if end < 0:
                    return MALFORMED if len(buf) - self._pos > CHUNK_LINE_LIMIT else INCOMPLETE
                size = bytes(buf[self._pos:end]).split(b";", 1)[0].rstrip(b" \t")
                if not _HEX.fullmatch(size):
                    return MALFORMED
                self._pos, self._left = end + 2, int(size, 16)
                self._phase = "data" if self._left else "trailers"
            elif self._phase == "data":
                taken = min(self._left, len(buf) - self._pos)
                self._pos += taken
                self._left -= taken
                self._decoded += taken
                if self._decoded > self.max_body + CHUNKED_SLACK:
                    return OVERSIZED
                if self._left:
                    return INCOMPLETE
                self._phase = "crlf"
            elif self._phase == "crlf":
                if len(buf) - self._pos < 2:
                    return INCOMPLETE
                if buf[self._pos:self._pos + 2] != b"\r\n":
                    return MALFORMED
                self._pos += 2
                self._phase = "size"
            else:  # trailers: none (a CRLF), or header lines up to CRLFCRLF
                if len(buf) - self._pos < 2:
                    return INCOMPLETE
                if buf[self._pos:self._pos + 2] == b"\r\n" or \
                        buf.find(b"\r\n\r\n", self._pos) >= 0:
                    return COMPLETE
                return MALFORMED if len(buf) - self._pos > HEAD_LIMIT else INCOMPLETE


def _held(data: bytes, shortage: Exception):
    """The parser's source: the buffered request, then ``shortage`` if it wants more.

    A request the loop judged complete never needs more; one handed over
    incomplete must not look like a shorter, complete one to the application.
    """
    yield data
    raise shortage


def _receive(conn) -> bytes | None:
    """What the connection has for us now: None when nothing yet, ``b""`` once the
    client closed it or it broke."""
    try:
        return conn.sock.recv(RECV_SIZE)
    except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
        return None
    except OSError:
        return b""


# The start of a request line naming a path under /api/ (read from the bytes received).
_API_REQUEST = re.compile(rb"[A-Z]+ /api/")


class BufferedConn(TConn):
    def __init__(self, cfg, sock, client, server):
        super().__init__(cfg, sock, client, server)
        self.state = READING
        self.handshaking = isinstance(sock, ssl.SSLSocket)
        self.watched = False
        self.buf = bytearray()
        self.framing: RequestFraming | None = None
        self.deadline = 0.0
        self.continue_sent = False
        self.close_after = False
        self.lingered = 0


class BufferingWorker(ThreadWorker):
    """gthread, with requests read whole by the event loop before a thread gets them."""

    #: Seconds for a whole request (headers and body) to arrive.
    request_timeout: float = 10.0
    #: Largest body the application accepts; beyond it the request is handed
    #: over from its headers, for the application to refuse, and not read.
    max_request_bytes: int = 64 * 1024
    #: The complete HTTP response sent to a client whose request did not arrive in time.
    timeout_response: bytes = (b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n"
                               b"Content-Length: 0\r\n\r\n")
    #: ... to one whose request line names a path under ``/api/`` (PMC's JSON API).
    api_timeout_response: bytes = timeout_response

    @property
    def send_timeout(self) -> float:
        return max(self.request_timeout, MIN_SEND_TIMEOUT)

    def init_process(self):
        # gunicorn builds an SSL context per connection; one per worker is enough.
        self._tls = ssl_context(self.cfg) if self.cfg.is_ssl else None
        self._deadlines: list = []
        self._order = itertools.count()
        super().init_process()  # runs the worker: set everything up before

    # -- the loop: accepting and reading -------------------------------------------

    def accept(self, listener):
        for _ in range(ACCEPT_BATCH):
            if self.nr_conns >= self.worker_connections:
                return
            try:
                client, address = listener.accept()
            except OSError as error:
                if error.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                    raise
                return
            self._accepted(client, address, listener.getsockname())

    def _accepted(self, client, address, server):
        self.nr_conns += 1
        client.setblocking(False)
        if self._tls is not None:
            try:
                client = self._tls.wrap_socket(
                    client, server_side=True, do_handshake_on_connect=False,
                    suppress_ragged_eofs=self.cfg.suppress_ragged_eofs)
            except (OSError, ValueError):  # gone already
                self.nr_conns -= 1
                util.close(client)
                return
        conn = BufferedConn(self.cfg, client, address, server)
        self._await_request(conn)
        self._on_readable(conn)

    def on_client_socket_readable(self, conn, client):
        """A kept-alive connection's next request begins: its deadline starts now."""
        self.keepalived_conns.remove(conn)
        self._await_request(conn)
        self._on_readable(conn)

    def _await_request(self, conn, data=b""):
        conn.state = READING
        conn.buf = bytearray(data)
        conn.framing = RequestFraming(self.max_request_bytes)
        conn.continue_sent = conn.close_after = False
        self._set_deadline(conn, self.request_timeout)
        self._watch(conn, selectors.EVENT_READ)

    def _on_readable(self, conn, _fileobj=None):
        if conn.state == LINGERING:
            self._drain(conn)
            return
        if conn.state != READING:
            return
        if conn.handshaking and not self._handshake(conn):
            return
        if conn.buf and self._advance(conn):  # read ahead with the previous request
            return
        while True:
            data = _receive(conn)
            if data is None:
                break
            if not data:
                self._close(conn)  # the client gave up on its request (or the socket broke)
                return
            conn.buf += data
            if self._advance(conn):
                return
        if conn.framing.expect_continue and not conn.continue_sent:
            self._send_continue(conn)

    def _handshake(self, conn) -> bool:
        try:
            conn.sock.do_handshake()
        except ssl.SSLWantReadError:
            self._watch(conn, selectors.EVENT_READ)
            return False
        except ssl.SSLWantWriteError:
            self._watch(conn, selectors.EVENT_WRITE)
            return False
        except OSError as error:  # SSLError included: not TLS, or not a cipher we speak
            self.log.debug("TLS handshake with %s failed: %s", conn.client, error)
            self._close(conn)
            return False
        conn.handshaking = False
        self._watch(conn, selectors.EVENT_READ)
        return True

    def _send_continue(self, conn):
        conn.continue_sent = True
        try:
            sent = conn.sock.send(CONTINUE)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            sent = 0
        except OSError:
            sent = -1
        if sent != len(CONTINUE):
            # Part of an interim response would corrupt the final one. A socket
            # buffer too full for 25 bytes means a client that does not read.
            self._close(conn)

    def _advance(self, conn) -> bool:
        """Hand the connection to a thread if its request is complete (or hopeless)."""
        verdict = conn.framing.feed(conn.buf)
        if verdict == INCOMPLETE:
            return False
        self._unwatch(conn)
        conn.state = BUSY
        data, conn.buf = bytes(conn.buf), bytearray()
        if verdict == HEAD_TOO_LARGE:
            # Cut before the end of the head, so that the parser refuses it
            # (431) however its own, larger limits would have judged it.
            data = data[:HEAD_LIMIT]
            shortage = LimitRequestHeaders(f"request head over {HEAD_LIMIT} bytes")
        else:
            shortage = NoMoreData(b"")
        conn.parser = http.get_parser(self.cfg, _held(data, shortage), conn.client)
        conn.close_after = verdict != COMPLETE
        conn.initialized = conn.data_ready = True  # handle() neither waits nor wraps again
        self.enqueue_req(conn)
        return True

    # -- the thread ----------------------------------------------------------------

    def load_wsgi(self):
        super().load_wsgi()
        app = self.wsgi

        def with_client_certificate(environ, start_response):
            subject = getattr(_PEER, "subject", None)
            if subject is not None:
                environ[CLIENT_SUBJECT] = subject
            return app(environ, start_response)

        self.wsgi = with_client_certificate

    def handle_request(self, req, conn):
        # The verified client certificate, if any, for the app (gunicorn's environ has none).
        _PEER.subject = certificate_subject(conn.sock.getpeercert()) \
            if isinstance(conn.sock, ssl.SSLSocket) else None
        # handle() made the socket blocking without a timeout: bound the writes.
        conn.sock.settimeout(self.send_timeout)
        # The body is here already: a 100 Continue now would be late (and perhaps a second one).
        req._expected_100_continue = False
        if conn.close_after:
            req.force_close()
        return super().handle_request(req, conn)

    def handle_error(self, req, client, addr, exc):
        try:
            client.settimeout(self.send_timeout)
        except OSError:
            pass
        super().handle_error(req, client, addr, exc)

    # -- back in the loop ----------------------------------------------------------

    def finish_request(self, conn, fs):
        try:
            keep = not fs.cancelled() and fs.result() is True and not conn.close_after
            if not keep:
                self._linger(conn)
                return
            # A pipelining client's next request may be in the parser's buffer, or
            # decrypted and waiting in the TLS layer: neither wakes the poller.
            ahead = conn.parser.unreader.buf.getvalue()
            conn.parser = None
            conn.sock.setblocking(False)
            if ahead or (isinstance(conn.sock, ssl.SSLSocket) and conn.sock.pending()):
                self._await_request(conn, ahead)
                self._on_readable(conn)
                return
            conn.state = IDLE
            conn.set_timeout()
            if not self.alive:
                conn.timeout = min(conn.timeout, time.monotonic() + STOP_KEEPALIVE_LINGER)
            self.keepalived_conns.append(conn)
            self._watch(conn, selectors.EVENT_READ, self.on_client_socket_readable)
        except Exception:
            self._close(conn)

    def _linger(self, conn):
        """Close after a last answer without blocking the loop (gunicorn's own
        graceful close waits up to 2 s for the client, on this thread)."""
        try:
            conn.sock.shutdown(socket.SHUT_WR)
            conn.sock.setblocking(False)
        except OSError:
            self._close(conn)
            return
        conn.state, conn.buf, conn.lingered = LINGERING, bytearray(), 0
        self._set_deadline(conn, LINGER_SECONDS)
        self._watch(conn, selectors.EVENT_READ)

    def _drain(self, conn):
        while True:
            data = _receive(conn)
            if data is None:
                return
            conn.lingered += len(data)
            if not data or conn.lingered >= LINGER_BYTES:
                self._close(conn)
                return

    # -- deadlines -----------------------------------------------------------------

    def _set_deadline(self, conn, seconds):
        conn.deadline = time.monotonic() + seconds
        heapq.heappush(self._deadlines, (conn.deadline, next(self._order), conn))

    def wait_for_and_dispatch_events(self, timeout):
        if self._deadlines:
            timeout = min(timeout, max(0.0, self._deadlines[0][0] - time.monotonic()))
        super().wait_for_and_dispatch_events(timeout)

    def murder_keepalived(self, force=False):
        """Close what has waited too long: kept-alive connections (gunicorn's
        keepalive timeout), requests past their deadline, lingering closes."""
        now = time.monotonic()
        while self.keepalived_conns and (force or self.keepalived_conns[0].timeout <= now):
            self._close(self.keepalived_conns[0])
        while self._deadlines and (force or self._deadlines[0][0] <= now):
            deadline, _, conn = heapq.heappop(self._deadlines)
            if conn.deadline != deadline or conn.state not in (READING, LINGERING):
                continue  # moved on since this deadline was set
            if conn.state == READING and conn.buf and not force:
                self._time_out(conn)
            else:
                self._close(conn)
        if not self.alive and not force:
            # Stopping: connections that have not started a request are not waited for.
            for _, _, conn in self._deadlines:
                if conn.state == READING and not conn.buf:
                    self._close(conn)

    def _time_out(self, conn):
        self.log.info("request from %s did not arrive within %g s (%d bytes received)",
                      conn.client[0] if isinstance(conn.client, tuple) else conn.client,
                      self.request_timeout, len(conn.buf))
        answer = self.api_timeout_response if _API_REQUEST.match(conn.buf) \
            else self.timeout_response
        try:
            conn.sock.send(answer)  # best effort: it may not all fit
        except OSError:
            pass
        self._linger(conn)

    # -- poller bookkeeping ----------------------------------------------------------

    def _watch(self, conn, events, callback=None):
        callback = partial(callback or self._on_readable, conn)
        if conn.watched:
            self.poller.modify(conn.sock, events, callback)
        else:
            self.poller.register(conn.sock, events, callback)
            conn.watched = True

    def _unwatch(self, conn):
        if conn.watched:
            try:
                self.poller.unregister(conn.sock)
            except (KeyError, ValueError, OSError):
                pass
            conn.watched = False

    def _close(self, conn):
        if conn.state == CLOSED:
            return
        if conn.state == IDLE and conn in self.keepalived_conns:
            self.keepalived_conns.remove(conn)
        self._unwatch(conn)
        conn.state = CLOSED
        self.nr_conns -= 1
        conn.close()
