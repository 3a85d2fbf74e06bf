"""The legacy ERP connector against the bundled ERP over HTTP, and how connectors are chosen."""
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from adapter.config import ErpSettings, load_settings
from adapter.domain.model import Currency, DueDate, Invoice, Origin, PaymentNotice
from adapter.erp.connector import ErpAck, ErpConnector, ErpDirectory, ErpLookup
from adapter.erp.legacy import LegacyErp, format_amount, format_time, parse_amount
from adapter.errors import ConfigurationError, ErpUnavailable
from support.data import free_port, today, unique
from support.servers import ErpSim


@pytest.fixture(scope="module")
def guarded_erp(tmp_path_factory):
    day = today() + timedelta(7)
    sim = ErpSim(tmp_path_factory.mktemp("guarded"),
                 [f"C1,F-1,USD,{day},1234567.89,{day + timedelta(1)},1300000.00,,"])
    sim.start("--require-auth", "pmc:s3cret")
    yield sim
    sim.stop()


def connector(erp: ErpSim, auth=None, username=None, password=None, timeout=2.0) -> LegacyErp:
    return LegacyErp(ErpSettings(wsdl=erp.wsdl_url, timeout=timeout, auth=auth,
                                username=username, password=password))


@pytest.mark.parametrize("auth", ["basic", "wsse"])
def test_credentials_reach_the_erp(guarded_erp, auth):
    lookup = connector(guarded_erp, auth, "pmc", "s3cret").customer_invoices("1234", "C1")
    day = today() + timedelta(7)
    assert lookup == ErpLookup(True, (Invoice(
        "1234", "C1", "F-1", Currency.USD,
        (DueDate(day, Decimal("1234567.89")), DueDate(day + timedelta(1), Decimal("1300000.00"))),
        Origin.ERP, description="Factura F-1"),))


@pytest.mark.parametrize("auth", ["basic", "wsse", None])
def test_wrong_or_missing_credentials_make_the_erp_unavailable(guarded_erp, auth):
    with pytest.raises(ErpUnavailable, match="ERR-401"):
        connector(guarded_erp, auth, "pmc", "wrong").customer_invoices("1234", "C1")


def test_posting_twice_is_acknowledged_as_a_duplicate(guarded_erp):
    erp = connector(guarded_erp, "basic", "pmc", "s3cret")
    notice = PaymentNotice("1234", unique("OP"), "C1", "F-1", Decimal("1234567.89"),
                           Currency.USD, datetime.now(timezone.utc), channel="ATM")
    first, second = erp.post_payment(notice, "R1"), erp.post_payment(notice, "R1")
    assert first == ErpAck(first.reference, duplicate=False) and first.reference
    assert second == ErpAck(first.reference, duplicate=True)
    assert guarded_erp.payment(notice.operation_id) == {"received": 2, "applied": 1}


def test_an_erp_that_is_not_there_is_unavailable_fast():
    erp = LegacyErp(ErpSettings(wsdl=f"http://127.0.0.1:{free_port()}/erp?wsdl", timeout=1))
    with pytest.raises(ErpUnavailable):
        erp.customer_invoices("1234", "C1")


def test_the_erps_formats():
    assert parse_amount("15230,50") == Decimal("15230.50")
    assert format_amount(Decimal("7")) == "7,00"
    assert format_time(datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)) == "02/01/2026 00:04:05"
    with pytest.raises(ValueError):
        parse_amount("mil")


class StaticErp(ErpConnector):
    """Another biller's ERP, as a biller would plug it in (see connector.py)."""

    def customer_invoices(self, biller_id, customer_id):
        return ErpLookup(customer_known=True)

    def post_payment(self, notice, receipt_id):
        return ErpAck(reference=self.options.options["prefix"] + receipt_id)


def test_each_biller_gets_the_connector_its_config_names(tmp_path):
    config = tmp_path / "adapter.toml"
    config.write_text('[adapter]\nerp_wsdl = "http://erp.invalid/erp?wsdl"\nerp_timeout = 2\n'
                      '[empresas.5678]\nerp_connector = "test_erp_connector:StaticErp"\n'
                      'erp_wsdl = "/opt/other.wsdl"\nerp_timeout = 0.5\n'
                      'erp_options = { prefix = "X-" }\n')
    directory = ErpDirectory(load_settings(config, environ={}))
    assert isinstance(directory.for_biller("1234"), LegacyErp)
    other = directory.for_biller("5678")
    assert isinstance(other, StaticErp) and other.options.timeout == 0.5
    assert other.post_payment(None, "R9").reference == "X-R9"
    assert directory.for_biller("5678") is other
    assert directory.for_biller("9876") is directory.for_biller("1234")  # one per ERP
    assert ErpDirectory(load_settings(environ={})).for_biller("1234") is None  # no ERP


def test_a_bad_global_connector_stops_the_start_even_with_no_biller_listed():
    settings = load_settings(environ={"PMC_ADAPTER_ERP_WSDL": "x.wsdl",
                                      "PMC_ADAPTER_ERP_CONNECTOR": "nowhere:Nothing"})
    with pytest.raises(ConfigurationError, match="cannot be loaded"):
        ErpDirectory(settings).check()


@pytest.mark.parametrize("section, words", [
    ('erp_connector = "nowhere:Nothing"', "cannot be loaded"),
    ('erp_connector = "adapter.config:Settings"', "not an ErpConnector"),
    ('erp_auth = "kerberos"', "erp_auth"),
])
def test_bad_erp_configuration_stops_the_start(tmp_path, section, words):
    config = tmp_path / "adapter.toml"
    config.write_text(f'[empresas.1234]\nerp_wsdl = "x.wsdl"\n{section}\n')
    with pytest.raises(ConfigurationError, match=words):
        ErpDirectory(load_settings(config, environ={})).check()


def test_every_call_ends_by_its_timeout_even_when_the_erp_dribbles(guarded_erp):
    """requests' timeout bounds each read: an ERP sending a byte every 0.2 s never trips
    it. The connector's timeout is the whole call's: lookups and postings alike end by
    then (and the WSDL, loaded before, stays loaded)."""
    import time

    erp = connector(guarded_erp, "basic", "pmc", "s3cret", timeout=1.0)
    assert erp.customer_invoices("1234", "C1").customer_known  # the WSDL is loaded now
    guarded_erp.configure(trickle_ms=200)
    try:
        for call in (lambda: erp.customer_invoices("1234", "C1"),
                     lambda: erp.post_payment(PaymentNotice(
                         "1234", unique("OP"), "C1", "F-1", Decimal("1.00"), Currency.USD,
                         datetime.now(timezone.utc)), "R-1")):
            started = time.monotonic()
            with pytest.raises(ErpUnavailable, match="no complete answer within 1 s"):
                call()
            assert time.monotonic() - started < 2.5
        # a fresh connector, whose WSDL load itself dribbles: the same bound
        fresh = connector(guarded_erp, "basic", "pmc", "s3cret", timeout=1.0)
        started = time.monotonic()
        with pytest.raises(ErpUnavailable):
            fresh.customer_invoices("1234", "C1")
        assert time.monotonic() - started < 2.5
    finally:
        guarded_erp.configure()
    # the connections the deadline cut are not reused broken: it answers again
    assert erp.customer_invoices("1234", "C1").customer_known
