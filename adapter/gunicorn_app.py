"""Running a WSGI application under gunicorn from our own commands."""
from __future__ import annotations

from typing import Callable

from gunicorn.app.base import BaseApplication


def serve_wsgi(load: Callable[[], Callable], *, bind: str, workers: int, threads: int = 1,
               log_level: str = "info", timeout: int = 60,
               post_worker_init: Callable | None = None,
               worker_exit: Callable | None = None) -> None:
    """Serve the app ``load()`` returns (called in each worker) until gunicorn stops."""

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
            if post_worker_init is not None:
                self.cfg.set("post_worker_init", post_worker_init)
            if worker_exit is not None:
                self.cfg.set("worker_exit", worker_exit)

        def load(self):
            return load()

    _Server().run()
