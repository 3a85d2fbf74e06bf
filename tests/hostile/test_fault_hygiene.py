"""A fault tells the client what it did wrong, and nothing of the adapter's insides.

The adapter's own failures (here: its database loses a table under it) are
``Server`` faults that name the kind of failure and an error ID; the driver's
message stays in the log, under that ID.
"""
import re

from sqlalchemy import text

from support.data import unique
from support.servers import start_server, stop_server
from support.soap import RawSoap


def test_a_database_failure_is_a_server_fault_with_an_error_id_only(own_database, tmp_path,
                                                                     schema):
    server = start_server(own_database, tmp_path)
    try:
        with server.database.engine.begin() as connection:
            connection.execute(text("DROP TABLE debt_queries"))
        reply = RawSoap(server.soap_url, schema).call(
            "ConsultarDeuda", [("idEmpresa", "1234"), ("idCliente", unique("C"))])
        assert reply.fault_code.startswith("soap:Server")
        assert "debt_queries" not in reply.fault_string
        assert "relation" not in reply.fault_string and "no such table" not in reply.fault_string
        error_id = re.search(r"error ID ([0-9a-f]{12})", reply.fault_string)[1]
        logged = [line for line in server.log().splitlines() if error_id in line]
        assert logged and "debt_queries" in "\n".join(logged)
    finally:
        stop_server(server)
