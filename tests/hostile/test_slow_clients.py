"""Slow clients: a request has a deadline, and slow or idle connections never hold up the others.

The server here gives a request ``DEADLINE`` seconds to arrive, headers and
body. The "crowd" is 200 connections that take their time -- idle ones that
send nothing, slowloris ones that send a request head a few bytes at a time,
slow-body ones that send a whole head and then trickle an InformarPago body.
The server has one worker of 4 threads, so that the crowd surely outnumbers
the threads (with several workers, one of them might accept few of it).
"""
from __future__ import annotations

import http.client
import json
import selectors
import socket
import ssl
import subprocess
import threading
import time
from urllib.parse import urlsplit

import pytest
import requests
from lxml import etree

from support.data import unique
from support.servers import start_server, stop_server
from support.soap import SoapReply, TNS, envelope

DEADLINE = 2            # seconds: the server's PMC_ADAPTER_REQUEST_TIMEOUT
MAX_REQUEST_BYTES = 65536
PATIENCE = 5            # seconds a client here waits for anything before it fails
QUERY = [("idEmpresa", "1234"), ("idCliente", "C1")]


@pytest.fixture(scope="module")
def server(database_url, tmp_path_factory):
    """This module's own server (the db and soap fixtures follow it)."""
    running = start_server(database_url, tmp_path_factory.mktemp("slow-clients"),
                           PMC_ADAPTER_WORKERS="1", PMC_ADAPTER_THREADS="4",
                           PMC_ADAPTER_REQUEST_TIMEOUT=str(DEADLINE),
                           PMC_ADAPTER_MAX_REQUEST_BYTES=str(MAX_REQUEST_BYTES))
    yield running
    stop_server(running)


def address(server) -> tuple[str, int]:
    url = urlsplit(server.base_url)
    return url.hostname, url.port


def payment(operation: str) -> bytes:
    return envelope("InformarPago", [
        ("idEmpresa", "1234"), ("idOperacion", operation), ("idCliente", "C1"),
        ("idFactura", "F1"), ("importe", "10.00"), ("moneda", "ARS"),
        ("fechaPago", "2026-11-26T10:00:00-03:00")])


def head(operation: str, *headers: str) -> bytes:
    lines = ["POST /soap HTTP/1.1", "Host: adapter", "Content-Type: text/xml; charset=utf-8",
             f'SOAPAction: "{operation}"', *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def post(operation: str, body: bytes) -> bytes:
    return head(operation, f"Content-Length: {len(body)}") + body


def chunked(data: bytes, size: int) -> list[bytes]:
    return [b"%x\r\n%s\r\n" % (len(piece), piece)
            for piece in (data[at:at + size] for at in range(0, len(data), size))]


class Wire:
    """One raw client connection, read one response at a time."""

    def __init__(self, server):
        self.sock = socket.create_connection(address(server), timeout=PATIENCE)
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def response(self) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buffer:
            self._receive()
        top, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        status_line, *lines = top.decode("latin-1").split("\r\n")
        headers = {name.strip().lower(): value.strip()
                   for name, value in (line.split(":", 1) for line in lines)}
        length = int(headers.get("content-length", 0))
        while len(self.buffer) < length:
            self._receive()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return int(status_line.split()[1]), headers, body

    def closed(self) -> bool:
        """Whether the server closes the connection (without saying anything more)."""
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def _receive(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError(f"closed by the server; received so far: {self.buffer[:200]!r}")
        self.buffer += data

    def close(self) -> None:
        self.sock.close()


def soap_reply(status: int, body: bytes) -> SoapReply:
    return SoapReply(status, etree.fromstring(body))


def debt_answer(status: int, body: bytes) -> str:
    """The codigoRespuesta of a ConsultarDeuda answer (which it must be)."""
    reply = soap_reply(status, body)
    assert status == 200 and reply.entry.tag == f"{{{TNS}}}ConsultarDeudaResponse", body[:300]
    return reply.field("codigoRespuesta")


class SlowClients:
    """Connections that take their time, fed by a thread every half second.

    ``idle`` ones send nothing; ``slowloris`` ones send a request head three
    bytes at a time; ``slow body`` ones send a whole head, then an InformarPago
    body three bytes at a time. None of them finishes within the deadline.
    """

    STEP, EVERY = 3, 0.5

    def __init__(self, server, idle=70, slowloris=70, slow_body=60):
        self.operations: list[str] = []
        self.clients: list[list] = []  # [kind, socket, bytes still to send]
        slow_head = head("InformarPago", "X-Padding: " + "x" * 200)
        for kind, count in (("idle", idle), ("slowloris", slowloris), ("slow body", slow_body)):
            for _ in range(count):
                sock = socket.create_connection(address(server), timeout=PATIENCE)
                pending = b""
                if kind == "slowloris":
                    pending = slow_head
                elif kind == "slow body":
                    self.operations.append(unique("OP"))
                    body = payment(self.operations[-1])
                    sock.sendall(head("InformarPago", f"Content-Length: {len(body)}"))
                    pending = body
                self.clients.append([kind, sock, pending])
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._feeder = threading.Thread(target=self._feed, daemon=True)
        self._feeder.start()

    def _feed(self) -> None:
        while not self._stop.wait(self.EVERY):
            for client in self.clients:
                if client[2]:
                    try:
                        client[1].sendall(client[2][:self.STEP])
                        client[2] = client[2][self.STEP:]
                    except OSError:
                        client[2] = b""

    def none_answered(self) -> bool:
        """No connection has been answered or closed yet."""
        with selectors.DefaultSelector() as selector:
            for _, sock, _ in self.clients:
                selector.register(sock, selectors.EVENT_READ)
            return not selector.select(timeout=0)

    def finish(self) -> dict[str, list[bytes]]:
        """Send what every slow body still lacks; then what each connection got, by kind."""
        self._stop.set()
        self._feeder.join()
        for _, sock, pending in self.clients:
            try:
                sock.sendall(pending)
            except OSError:
                pass  # closed already: what matters is what was answered
        received = {id(sock): b"" for _, sock, _ in self.clients}
        until = time.monotonic() + PATIENCE
        with selectors.DefaultSelector() as selector:
            for _, sock, _ in self.clients:
                selector.register(sock, selectors.EVENT_READ)
            while selector.get_map() and time.monotonic() < until:
                for key, _ in selector.select(timeout=until - time.monotonic()):
                    try:
                        data = key.fileobj.recv(65536)
                    except ConnectionResetError:
                        data = b""
                    received[id(key.fileobj)] += data
                    if not data:
                        selector.unregister(key.fileobj)
            assert not selector.get_map(), \
                f"{len(selector.get_map())} slow connections still open {PATIENCE} s on"
        outcomes: dict[str, list[bytes]] = {}
        for kind, sock, _ in self.clients:
            outcomes.setdefault(kind, []).append(received[id(sock)])
        return outcomes

    def close(self) -> None:
        self._stop.set()
        self._feeder.join()
        for _, sock, _ in self.clients:
            sock.close()


@pytest.fixture
def crowd(server):
    """200 slow or idle connections, open for the whole test."""
    clients = SlowClients(server)
    yield clients
    clients.close()


def timed_query(server) -> float:
    started = time.monotonic()
    response = requests.post(server.soap_url, data=envelope("ConsultarDeuda", QUERY),
                             headers={"Content-Type": "text/xml; charset=utf-8",
                                      "SOAPAction": '"ConsultarDeuda"'}, timeout=PATIENCE)
    elapsed = time.monotonic() - started
    assert debt_answer(response.status_code, response.content) == "1"
    return elapsed


def test_a_body_that_stalls_half_way_is_cut_at_the_deadline_and_nothing_is_written(
        server, db, schema):
    operation = unique("OP")
    request = post("InformarPago", payment(operation))
    wire = Wire(server)
    try:
        started = time.monotonic()
        wire.send(request[:len(request) // 2 + 100])
        status, headers, body = wire.response()
        waited = time.monotonic() - started
        assert DEADLINE - 0.1 < waited < DEADLINE + 1, f"answered after {waited:.2f} s"
        assert (status, headers["connection"]) == (500, "close")
        reply = soap_reply(status, body)
        assert reply.fault_code == "soap:Client.RequestTimeout"
        assert f"within {DEADLINE} s" in reply.fault_string
        schema.validate(reply.entry.find(f"detail/{{{TNS}}}falla"))
        try:
            wire.send(request[len(request) // 2 + 100:])  # the rest, too late
        except OSError:
            pass
        assert wire.closed()
    finally:
        wire.close()
    assert db.count("payments", operation_id=operation) == 0


def test_a_chunked_body_arriving_in_pieces_is_answered(server, crowd):
    pieces = chunked(envelope("ConsultarDeuda", QUERY), 100)
    pieces[1] = pieces[1].replace(b"\r\n", b";piece=2\r\n", 1)  # a chunk extension
    wire = Wire(server)
    try:
        wire.send(head("ConsultarDeuda", "Transfer-Encoding: chunked"))
        for piece in pieces:
            wire.send(piece[:5])
            time.sleep(0.05)
            wire.send(piece[5:])
        wire.send(b"0\r\nX-Checksum: none\r\n\r\n")  # last chunk, with a trailer
        status, _, body = wire.response()
        assert debt_answer(status, body) == "1"
    finally:
        wire.close()


def test_expect_100_continue_gets_one_interim_answer_then_the_response(server, crowd):
    request_body = envelope("ConsultarDeuda", QUERY)
    wire = Wire(server)
    try:
        wire.send(head("ConsultarDeuda", f"Content-Length: {len(request_body)}",
                       "Expect: 100-continue"))
        assert wire.response() == (100, {}, b"")
        wire.send(request_body)
        status, _, body = wire.response()
        assert debt_answer(status, body) == "1"
        assert wire.buffer == b""
    finally:
        wire.close()


def test_a_kept_alive_connection_serves_several_calls(server, crowd):
    netloc = urlsplit(server.base_url).netloc
    connection = http.client.HTTPConnection(netloc, timeout=PATIENCE)
    ports = set()
    try:
        for _ in range(3):
            connection.request("POST", "/soap", body=envelope("ConsultarDeuda", QUERY),
                               headers={"Content-Type": "text/xml; charset=utf-8",
                                        "SOAPAction": '"ConsultarDeuda"'})
            response = connection.getresponse()
            assert debt_answer(response.status, response.read()) == "1"
            assert response.getheader("Connection") == "keep-alive"
            ports.add(connection.sock.getsockname()[1])
            time.sleep(0.2)
    finally:
        connection.close()
    assert len(ports) == 1, "one connection for every call"


def test_two_requests_pipelined_in_one_send_are_answered_in_order(server, crowd):
    wire = Wire(server)
    try:
        wire.send(post("ConsultarDeuda", envelope("ConsultarDeuda", QUERY))
                  + b"GET /health HTTP/1.1\r\nHost: adapter\r\n\r\n")
        status, _, body = wire.response()
        assert debt_answer(status, body) == "1"
        status, _, body = wire.response()
        assert (status, json.loads(body)["status"]) == (200, "ok")
    finally:
        wire.close()


def test_an_oversized_request_is_refused_from_its_headers_and_the_connection_closed(server):
    declared = Wire(server)
    streamed = Wire(server)
    try:
        declared.send(head("InformarPago", f"Content-Length: {50 * 1024 * 1024}") + b"<x/>")
        streamed.send(head("InformarPago", "Transfer-Encoding: chunked"))
        # more than twice the cap, and no last chunk
        streamed.send(b"".join(chunked(b"<x/>" * (MAX_REQUEST_BYTES // 2 + 1024), 4096)))
        for wire in (declared, streamed):
            status, headers, body = wire.response()
            assert (status, headers["connection"]) == (500, "close")
            assert soap_reply(status, body).fault_code == "soap:Client.RequestTooLarge"
            assert wire.closed()
    finally:
        declared.close()
        streamed.close()


def half_a_client_hello() -> bytes:
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ssl.create_default_context().wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        hello = outgoing.read()
        return hello[:len(hello) // 2]
    raise AssertionError("a TLS handshake cannot complete without the server")


def test_over_https_handshakes_that_stall_hold_up_no_one(tmp_path):
    # The transport alone is at stake: one database is enough.
    database_url = f"sqlite:///{tmp_path / 'adapter.sqlite3'}"
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    server = start_server(database_url, tmp_path, scheme="https", verify=str(cert),
                          PMC_ADAPTER_TLS_CERT=str(cert), PMC_ADAPTER_TLS_KEY=str(key),
                          PMC_ADAPTER_WORKERS="1", PMC_ADAPTER_THREADS="4",
                          PMC_ADAPTER_REQUEST_TIMEOUT=str(DEADLINE))
    stalled = []
    try:
        hello = half_a_client_hello()
        for number in range(200):
            stalled.append(socket.create_connection(address(server), timeout=PATIENCE))
            if number % 2:
                stalled[-1].sendall(hello)  # the other half never comes
        started = time.monotonic()
        response = requests.post(server.soap_url, data=envelope("ConsultarDeuda", QUERY),
                                 headers={"Content-Type": "text/xml; charset=utf-8",
                                          "SOAPAction": '"ConsultarDeuda"'},
                                 verify=str(cert), timeout=PATIENCE)
        assert time.monotonic() - started < 1
        assert debt_answer(response.status_code, response.content) == "1"

        time.sleep(max(0.0, started + DEADLINE + 0.5 - time.monotonic()))
        for sock in stalled:  # closed at the deadline, without a word
            try:
                assert sock.recv(1024) == b""
            except ConnectionResetError:
                pass
        assert server.alive()
    finally:
        for sock in stalled:
            sock.close()
        stop_server(server)


def test_200_slow_or_idle_clients_hold_up_no_one_and_are_cut_at_the_deadline(
        server, db, soap):
    before = db.counts()
    slow = SlowClients(server)
    try:
        timings = []
        for _ in range(4):
            timings.append(timed_query(server))
            time.sleep(0.1)
        assert max(timings) < 1, f"answered in {timings} s while 200 slow clients wait"
        assert slow.none_answered(), "the slow clients were all still waiting meanwhile"

        time.sleep(max(0.0, slow.started + DEADLINE + 0.5 - time.monotonic()))
        outcomes = slow.finish()  # the slow bodies are completed only now, too late
    finally:
        slow.close()

    assert outcomes["idle"] == [b""] * 70, "idle connections are closed without a word"
    for got in outcomes["slowloris"] + outcomes["slow body"]:
        assert got.startswith(b"HTTP/1.1 500 ") and b"Client.RequestTimeout" in got, got[:300]
        assert b"\r\nConnection: close\r\n" in got
    for operation in slow.operations:
        assert db.count("payments", operation_id=operation) == 0
    after = db.counts()
    assert (after["payments"], after["invoices"]) == (before["payments"], before["invoices"])

    # ... and, at the end of this module, the server is as healthy as ever
    assert server.alive()
    assert soap.call("ConsultarDeuda", QUERY).field("codigoRespuesta") == "1"
    assert "Traceback" not in server.log()
