"""GET /metrics: Prometheus text, summed over gunicorn's three workers, counting what the
test did; the outbox looked up when scraped; the address allow-list applies, and
``metrics_networks`` can narrow it."""
from __future__ import annotations

import base64

import requests
from prometheus_client.parser import text_string_to_metric_families

from support.data import today, unique
from support.servers import ErpSim, erp_env, start_server, stop_server, wait_until
from support.soap import envelope


def scrape(server) -> dict[tuple, float]:
    response = requests.get(server.base_url + "/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples}


def value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def post(server, payload: bytes, action: str, password: str | None = "pmc-s3cret"):
    headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{action}"'}
    if password:
        headers["Authorization"] = "Basic " + base64.b64encode(
            f"pmc:{password}".encode()).decode()
    return requests.post(server.soap_url, data=payload, headers=headers, timeout=30)


def test_metrics_count_what_every_worker_did(own_database, tmp_path):
    (tmp_path / "erp").mkdir()
    erp = ErpSim(tmp_path / "erp", [])  # configured, never started: down all along
    server = start_server(own_database, tmp_path, **erp_env(erp),
                          PMC_ADAPTER_CALLERS="pmc:pmc-s3cret",
                          PMC_ADAPTER_TLS_AT_PROXY="true")  # HTTP Basic: TLS in front
    try:
        before = scrape(server)
        query = envelope("ConsultarDeuda", [("idEmpresa", "1234"), ("idCliente", "NOBODY")])
        for _ in range(9):  # spread over the workers
            assert post(server, query, "ConsultarDeuda").status_code == 200
        payment = envelope("InformarPago", [
            ("idEmpresa", "1234"), ("idOperacion", unique("OP")), ("idCliente", "NOBODY"),
            ("idFactura", "F-1"), ("importe", "1.00"), ("moneda", "ARS"),
            ("fechaPago", f"{today()}T00:00:00-03:00")])
        assert post(server, payment, "InformarPago").status_code == 200
        invalid = envelope("ConsultarDeuda", [("idEmpresa", "12"), ("idCliente", "X")])
        assert post(server, invalid, "ConsultarDeuda").status_code == 500
        assert post(server, query, "ConsultarDeuda", password="wrong").status_code == 500
        wait_until(lambda: value(scrape(server), "pmc_outbox_items", destination="erp",
                                 state="failing") == 1,
                   timeout=30, what="the payment failing to reach the down ERP")
        after = scrape(server)

        def grew(name, **labels):
            return value(after, name, **labels) - value(before, name, **labels)

        assert grew("pmc_requests_total", operation="ConsultarDeuda", outcome="1") == 9
        assert grew("pmc_requests_total", operation="InformarPago", outcome="3") == 1
        # the invalid one and the one with a wrong password
        assert grew("pmc_requests_total", operation="ConsultarDeuda", outcome="fault") == 2
        assert grew("pmc_faults_total", code="Client.SchemaViolation") == 1
        assert grew("pmc_faults_total", code="Client.NotAuthenticated") == 1
        assert grew("pmc_refusals_total", code="Client.NotAuthenticated") == 1
        assert grew("pmc_request_seconds_count", operation="ConsultarDeuda") == 11
        # the lookups and the deliveries the down ERP refused, each counted
        assert grew("pmc_erp_call_seconds_count", operation="GetCustomerItems",
                    result="unavailable") >= 10
        assert grew("pmc_erp_call_seconds_count", operation="PostPayment",
                    result="unavailable") >= 1
        assert value(after, "pmc_outbox_oldest_seconds", destination="erp", state="failing") >= 0
    finally:
        stop_server(server)


def test_metrics_networks_narrow_who_may_scrape(own_database, tmp_path):
    server = start_server(own_database, tmp_path, PMC_ADAPTER_METRICS_NETWORKS="10.9.9.0/24")
    try:
        assert requests.get(server.base_url + "/metrics", timeout=10).status_code == 403
        assert requests.get(server.base_url + "/health", timeout=10).status_code == 200
    finally:
        stop_server(server)
