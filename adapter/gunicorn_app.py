"""Running a WSGI application under gunicorn from our own commands."""
from __future__ import annotations

import math
import ssl
from typing import Callable

from gunicorn.app.base import BaseApplication

from adapter.gunicorn_worker import BufferingWorker


def serve_wsgi(load: Callable[[], Callable], *, bind: str, workers: int, threads: int = 1,
               log_level: str = "info", timeout: int = 60, graceful_timeout: float = 20,
               tls: tuple[str, str] | None = None, client_ca: str | None = None,
               request_timeout: float = 10.0,
               max_request_bytes: int = 64 * 1024, timeout_response: bytes = b"",
               api_timeout_response: bytes = b"{}", log_format: str = "text") -> None:
    """Serve the app ``load()`` returns (called in each worker) until gunicorn stops;
    with ``tls`` = (certificate, key) PEM files, over HTTPS; with ``client_ca`` too (a PEM
    bundle), clients may present a certificate of those CAs (one that does not verify
    fails the handshake), whose subject the app finds in the environ.

    Each request is read whole by the worker's event loop before a thread runs
    the app (:mod:`adapter.gunicorn_worker`), so slow or idle clients hold no
    thread. A request has ``request_timeout`` seconds to arrive; a client that
    sent only part of one by then gets ``timeout_response`` (an XML body, e.g. a
    SOAP fault) with HTTP 500 -- or, for a path under ``/api/``,
    ``api_timeout_response`` (a JSON body) with HTTP 408 -- and is disconnected. A body declared larger than
    ``max_request_bytes`` is not read: the app gets the request from its headers.
    """
    worker_class = type("AdapterWorker", (BufferingWorker,), {
        "request_timeout": request_timeout,
        "max_request_bytes": max_request_bytes,
        "timeout_response": (b"HTTP/1.1 500 Internal Server Error\r\n"
                             b"Content-Type: text/xml; charset=utf-8\r\n"
                             b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                             % (len(timeout_response), timeout_response)),
        "api_timeout_response": (b"HTTP/1.1 408 Request Timeout\r\n"
                                 b"Content-Type: application/json\r\n"
                                 b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                                 % (len(api_timeout_response), api_timeout_response)),
    })

    class _Server(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", [bind])
            self.cfg.set("workers", workers)
            self.cfg.set("threads", threads)
            self.cfg.set("worker_class", worker_class)
            # The worker frames HTTP/1.1 requests itself: no HTTP/2, by ALPN or h2c.
            self.cfg.set("http_protocols", "h1")
            self.cfg.set("http2_cleartext", "off")
            # X-Forwarded-* are trusted by the gateway's own setting (trusted_proxies),
            # never by gunicorn's default of loopback.
            self.cfg.set("forwarded_allow_ips", "")
            self.cfg.set("timeout", timeout)
            # SIGTERM: stop accepting, finish what is in flight, exit within this
            self.cfg.set("graceful_timeout", max(1, math.ceil(graceful_timeout)))
            self.cfg.set("loglevel", log_level)
            # a dead worker's live metrics (gauges) are not the server's any more
            self.cfg.set("child_exit", _forget_worker_metrics)
            self.cfg.set("accesslog", "-")
            # gunicorn's own lines, its access log included, in the adapter's format:
            # one escaped line a record (adapter.logs)
            self.cfg.set("logger_class", _logger_class(log_format))
            if "control_socket_disable" in self.cfg.settings:  # gunicorn >= 24
                # one control socket per user would clash between instances
                self.cfg.set("control_socket_disable", True)
            if tls is not None:
                self.cfg.set("certfile", tls[0])
                self.cfg.set("keyfile", tls[1])
            if client_ca is not None:
                self.cfg.set("ca_certs", client_ca)
                # optional: callers with passwords need no certificate
                self.cfg.set("cert_reqs", ssl.CERT_OPTIONAL)

        def load(self):
            return load()

    _Server().run()


def _logger_class(log_format: str) -> type:
    from gunicorn.glogging import Logger

    from adapter.logs import RECORDED, format_for

    class AdapterLogger(Logger):
        def setup(self, cfg):
            super().setup(cfg)
            formatter = format_for(log_format)
            for handler in self.error_log.handlers + self.access_log.handlers:
                handler.setFormatter(formatter)

        def access(self, resp, req, environ, request_time):
            if environ.get(RECORDED):  # the gateway's record is this request's line
                return
            super().access(resp, req, environ, request_time)

    return AdapterLogger


def _forget_worker_metrics(_arbiter, worker) -> None:
    from adapter.metrics_folder import worker_exited
    worker_exited(worker.pid)
