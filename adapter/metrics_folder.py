"""Where the workers of one ``pmc-adapter serve`` keep their metrics.

Separate from :mod:`adapter.metrics` because prometheus_client decides, when it is
first imported, whether values live in this process or in files shared by every
process: the folder must be named before that, in gunicorn's master, so that the
workers forked from it count into one place.
"""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_multiprocess() -> None:
    """Point prometheus_client at a fresh folder for this server's processes: the one
    PROMETHEUS_MULTIPROC_DIR names (emptied of a previous run's values), else a new
    temporary one, removed when this process -- the master -- exits. Call it before
    anything imports prometheus_client in the master: the workers inherit it."""
    folder = os.environ.get(MULTIPROC_ENV)
    if folder:
        for name in os.listdir(folder):  # a previous run's values are not this one's
            if name.endswith(".db"):
                os.unlink(os.path.join(folder, name))
        return
    folder = tempfile.mkdtemp(prefix="pmc-adapter-metrics-")
    os.environ[MULTIPROC_ENV] = folder
    master = os.getpid()
    # forked workers inherit this handler: only the master removes the folder
    atexit.register(lambda: os.getpid() == master and shutil.rmtree(folder, True))


def worker_exited(pid: int) -> None:
    """gunicorn's ``child_exit``: a dead worker's live values are not the server's."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess
        multiprocess.mark_process_dead(pid)
