"""A unit of work's connection and transaction (a constraint refusing it raises
:class:`adapter.errors.Conflict`)."""
from __future__ import annotations

from sqlalchemy import Connection
from sqlalchemy.orm import Session


class Transaction:
    """A unit of work's connection and transaction: Core statements run on it
    directly (the hot paths), and an ORM session joins it only when a repository
    needs one (creating or replacing an invoice, the outbox)."""

    def __init__(self, connection: Connection):
        self._connection = connection
        self._session: Session | None = None

    def execute(self, statement, parameters: dict | list | None = None):
        return self._connection.execute(statement, parameters)

    @property
    def dialect(self) -> str:
        return self._connection.dialect.name

    @property
    def session(self) -> Session:
        if self._session is None:
            if not self._connection.in_transaction():
                self._connection.begin()
            # joins the connection's transaction, which the unit of work ends
            self._session = Session(bind=self._connection, expire_on_commit=False,
                                    autoflush=True)
        return self._session

    def commit(self) -> None:
        if self._session is not None:
            self._session.flush()
        self._connection.commit()

    def close(self) -> None:
        try:
            if self._session is not None:
                self._session.close()
        finally:
            self._connection.close()  # an open transaction is rolled back
