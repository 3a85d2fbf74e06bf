"""A total deadline for a call over ``requests``, whatever the server does.

requests' (urllib3's) timeout bounds each connect and each read, not the call: an
ERP answering one byte a second never trips a 3 s timeout, and a delivery that
should take 3 s takes minutes -- longer than the claim that covers it. Here a
timer shuts the call's connections down at the deadline, which makes the read
blocked on them fail at once; :func:`within` then raises :class:`DeadlineExceeded`.

A session gets it by mounting :class:`DeadlineAdapter`; calls made outside
:func:`within` behave as usual.
"""
from __future__ import annotations

import socket
import threading
from typing import Callable, TypeVar

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from adapter.errors import DeadlineExceeded

T = TypeVar("T")
_current = threading.local()


class _Watch:
    """The sockets of one call, shut down if its deadline passes first."""

    def __init__(self):
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.expired = False
        self._finished = False

    def add(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                _shut(sock)

    def expire(self) -> None:
        with self._lock:
            if self._finished:
                return
            self.expired = True
            for sock in self._sockets:
                _shut(sock)

    def finish(self) -> None:
        with self._lock:
            self._finished = True


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # already closed
        pass


def _watch_new(connection) -> None:
    watch = getattr(_current, "watch", None)
    if watch is not None:
        watch.add(connection.sock)


class _Connection(HTTPConnection):
    def connect(self) -> None:
        super().connect()
        _watch_new(self)


class _TlsConnection(HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        _watch_new(self)


class _Pool(HTTPConnectionPool):
    ConnectionCls = _Connection

    def _get_conn(self, timeout=None):
        connection = super()._get_conn(timeout)
        _watch_new(connection)  # a pooled one, connected already (else: at connect)
        return connection


class _TlsPool(HTTPSConnectionPool):
    ConnectionCls = _TlsConnection

    def _get_conn(self, timeout=None):
        connection = super()._get_conn(timeout)
        _watch_new(connection)
        return connection


class DeadlineAdapter(HTTPAdapter):
    """requests' adapter whose connections a :func:`within` deadline can cut."""

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _Pool, "https": _TlsPool}


def within(seconds: float, call: Callable[[], T]) -> T:
    """``call()``, cut at ``seconds``: DeadlineExceeded then (through sessions that
    mount :class:`DeadlineAdapter`)."""
    watch = _Watch()
    previous = getattr(_current, "watch", None)
    _current.watch = watch
    timer = threading.Timer(seconds, watch.expire)
    timer.daemon = True
    timer.start()
    try:
        return call()
    except Exception as error:
        if watch.expired:
            raise DeadlineExceeded(seconds) from error
        raise
    finally:
        timer.cancel()
        watch.finish()
        _current.watch = previous
