"""A real FTPS server on loopback (pyftpdlib, in a thread), in implicit and explicit TLS,
with a throwaway CA (the ``pki`` fixture: import it by name).

The server is as strict as the network's should be: TLS required on the control and the
data connections, and every data connection must resume the control connection's TLS
session (vsftpd's ``require_ssl_reuse``; pyftpdlib itself does not ask for it).
pyftpdlib has no implicit TLS: :class:`ImplicitTlsHandler` adds it.
"""
from __future__ import annotations

import contextlib
import os
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from OpenSSL import SSL
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.filesystems import AbstractedFS
from pyftpdlib.handlers import TLS_DTPHandler, TLS_FTPHandler
from pyftpdlib.ioloop import IOLoop
from pyftpdlib.servers import FTPServer

from adapter.config import FtpsSettings
from support.pki import issue, name, write

USER, PASSWORD = "biller1234", "pw-Zq81!xx-never-shown"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pki")
    network_ca = issue(name("Network CA"), None, ca=True)
    unknown_ca = issue(name("Network CA"), None, ca=True)  # same name, other key
    return {"ca": write(folder, "ca", *network_ca)[0],
            "server": write(folder, "server", *issue(name("127.0.0.1"), network_ca, server=True)),
            "impostor": write(folder, "impostor",
                              *issue(name("127.0.0.1"), unknown_ca, server=True))}


class ImplicitTlsHandler(TLS_FTPHandler):
    """Implicit TLS: the handshake from the first byte, the greeting once it is done."""

    def handle(self):
        self.secure_connection(self.ssl_context)

    def handle_ssl_established(self):
        super().handle()


@dataclass
class FtpsServer:
    root: Path
    tls: str
    port: int = 0
    ca_file: str = ""
    resumed: list[bool] = field(default_factory=list)  # per data connection: TLS resumed?
    sabotage: dict[str, str] = field(default_factory=dict)  # report name -> "cut" or "short"
    tls_goodbye: bool = True  # False: data connections closed without close_notify
    empty_listing: str = "226"  # "450": "450 No files found", as ProFTPD answers

    def publish(self, name: str, content: bytes) -> bytes:
        (self.root / "Download" / name).write_bytes(content)
        return content

    def options(self, **overrides) -> FtpsSettings:
        return FtpsSettings(**{"host": "127.0.0.1", "port": self.port, "tls": self.tls,
                              "username": USER, "password": PASSWORD,
                              "ca_file": self.ca_file, "timeout": 10, **overrides})


class Sabotaged:
    """A file served half: then the connections are cut without a word ("cut"), or the
    transfer ends as if complete ("short")."""

    def __init__(self, file, how: str, control):
        self.file, self.how, self.control, self.started = file, how, control, False

    def read(self, size: int) -> bytes:
        if not self.started:
            self.started = True
            return self.file.read(min(size, os.path.getsize(self.file.name) // 2))
        if self.how == "cut":
            for channel in (self.control, self.control.data_channel):
                channel.socket.sock_shutdown(socket.SHUT_RDWR)
        return b""

    def __getattr__(self, attribute):
        return getattr(self.file, attribute)


def handler_for(server: FtpsServer, certificate: tuple[str, str], tls_max: int | None):
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    context.use_certificate_chain_file(certificate[0])
    context.use_privatekey_file(certificate[1])
    if tls_max:
        context.set_max_proto_version(tls_max)
    authorizer = DummyAuthorizer()
    authorizer.add_user(USER, PASSWORD, str(server.root), perm="elradfmw")  # Upload/ takes files

    class Data(TLS_DTPHandler):
        def handle_ssl_established(self):
            resumed = bool(SSL._lib.SSL_session_reused(self.socket._ssl))  # no public API
            server.resumed.append(resumed)
            if not resumed:
                self.cmd_channel.respond("522 TLS session reuse required.")
                self.close()

        def close(self):
            if not server.tls_goodbye:
                self._error = True  # pyftpdlib's way to skip SSL_shutdown
            super().close()

    class Files(AbstractedFS):
        def open(self, filename, mode):
            file = super().open(filename, mode)
            how = server.sabotage.get(os.path.basename(filename))
            return Sabotaged(file, how, self.cmd_channel) if how else file

    base = ImplicitTlsHandler if server.tls == "implicit" else TLS_FTPHandler

    def ftp_NLST(self, path):
        if server.empty_listing == "450" and self.fs.isdir(path) and not os.listdir(path):
            return self.respond("450 No files found")
        return base.ftp_NLST(self, path)

    return type("Handler", (base,), {
        "ssl_context": context, "authorizer": authorizer, "dtp_handler": Data,
        "abstracted_fs": Files, "tls_control_required": True, "tls_data_required": True,
        "auth_failed_timeout": 0.1, "ftp_NLST": ftp_NLST})


@contextlib.contextmanager
def serving(server: FtpsServer, certificate: tuple[str, str], tls_max: int | None = None):
    (server.root / "Download").mkdir(parents=True, exist_ok=True)
    (server.root / "Upload").mkdir(parents=True, exist_ok=True)
    ftpd = FTPServer(("127.0.0.1", 0), handler_for(server, certificate, tls_max),
                     ioloop=IOLoop())
    server.port = ftpd.address[1]
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            ftpd.ioloop.loop(timeout=0.05, blocking=False)
        ftpd.close_all()

    thread = threading.Thread(target=loop, name=f"ftpd-{server.port}", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        stop.set()
        thread.join(timeout=10)


def adapter_environment(server: FtpsServer, database_url: str, biller_id: str,
                        **more) -> dict:
    """The environment of a ``pmc-adapter`` command serving ``biller_id`` whose FTPS
    account is on ``server``."""
    return {**os.environ, "PMC_ADAPTER_DATABASE_URL": database_url,
            "PMC_ADAPTER_EMPRESAS": biller_id,
            "PMC_ADAPTER_COB_FTP_HOST": "127.0.0.1",
            "PMC_ADAPTER_COB_FTP_PORT": str(server.port),
            "PMC_ADAPTER_COB_FTP_TLS": server.tls,
            "PMC_ADAPTER_COB_FTP_USERNAME": USER,
            "PMC_ADAPTER_COB_FTP_PASSWORD": PASSWORD,
            "PMC_ADAPTER_COB_FTP_CA_FILE": server.ca_file, **more}
