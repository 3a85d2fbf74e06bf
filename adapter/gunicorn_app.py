"""Running a WSGI application under gunicorn from our own commands."""
from __future__ import annotations

from typing import Callable

from gunicorn.app.base import BaseApplication


def serve_wsgi(load: Callable[[], Callable], *, bind: str, workers: int, threads: int = 1,
               log_level: str = "info", timeout: int = 60,
               tls: tuple[str, str] | None = None) -> None:
    """Serve the app ``load()`` returns (called in each worker) until gunicorn stops;
    with ``tls`` = (certificate, key) PEM files, over HTTPS."""

    class _Server(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", [bind])
            self.cfg.set("workers", workers)
            self.cfg.set("threads", threads)
            self.cfg.set("worker_class", "gthread" if threads > 1 else "sync")
            self.cfg.set("timeout", timeout)
            self.cfg.set("graceful_timeout", 20)
            self.cfg.set("loglevel", log_level)
            self.cfg.set("accesslog", "-")
            if "control_socket_disable" in self.cfg.settings:  # gunicorn >= 24
                # one control socket per user would clash between instances
                self.cfg.set("control_socket_disable", True)
            if tls is not None:
                self.cfg.set("certfile", tls[0])
                self.cfg.set("keyfile", tls[1])

        def load(self):
            return load()

    _Server().run()
