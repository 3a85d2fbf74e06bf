"""Configuration: defaults that work on a fresh machine, a TOML file, environment overrides."""
import pytest

from adapter.config import DEFAULT_DATABASE_URL, load_settings
from adapter.errors import ConfigurationError


def test_defaults_work_on_a_fresh_machine():
    settings = load_settings(environ={})
    assert settings.database_url == DEFAULT_DATABASE_URL == "sqlite:///pmc-adapter.sqlite3"
    assert settings.bind == "127.0.0.1:8080" and settings.max_request_bytes == 64 * 1024
    assert settings.serves("0001")  # no list: every biller


def test_environment_wins_over_the_file(tmp_path):
    config = tmp_path / "adapter.toml"
    config.write_text('[adapter]\nworkers = 4\nempresas = ["1234"]\nbind = "0.0.0.0:9000"\n'
                      '[empresas.1234]\nname = "Aguas del Sur"\n')
    settings = load_settings(environ={"PMC_ADAPTER_CONFIG": str(config),
                                      "PMC_ADAPTER_EMPRESAS": "1234, 5678",
                                      "PMC_ADAPTER_WORKERS": "3"})
    assert settings.workers == 3 and settings.bind == "0.0.0.0:9000"
    assert settings.empresas == {"1234", "5678"} and not settings.serves("9999")
    assert settings.billers["1234"]["name"] == "Aguas del Sur"


@pytest.mark.parametrize("environ, words", [
    ({"PMC_ADAPTER_EMPRESAS": "12345"}, "4 digits"),
    ({"PMC_ADAPTER_WORKERS": "many"}, "whole number"),
    ({"PMC_ADAPTER_MAX_REQUEST_BYTES": "0"}, "positive"),
    ({"PMC_ADAPTER_ERP_TIMEOUT": "soon"}, "erp_timeout must be a number"),
    ({"PMC_ADAPTER_TLS_CERT": "cert.pem"}, "both tls_cert and tls_key"),
    ({"PMC_ADAPTER_CALLERS": "pmc"}, "name:password"),
    ({"PMC_ADAPTER_ALLOWED_NETWORKS": "10.0.0.0/33"}, "not a network"),
    ({"PMC_ADAPTER_FORWARD_RETRY_MAX": "-1"}, "forward_retry_max must be positive"),
    ({"PMC_ADAPTER_CONFIG": "/nonexistent/adapter.toml"}, "cannot read"),
    ({"PMC_ADAPTER_PUBLIC_WSDL": "maybe"}, "public_wsdl must be true or false"),
    ({"PMC_ADAPTER_REQUEST_TIMEOUT": "0"}, "request_timeout must be positive"),
    ({"PMC_ADAPTER_MAX_XML_ELEMENTS": "lots"}, "max_xml_elements must be a whole number"),
    ({"PMC_ADAPTER_MAX_XML_DEPTH": "257"}, "max_xml_depth must be at most 256"),
])
def test_bad_configuration_is_refused_with_a_reason(environ, words):
    with pytest.raises(ConfigurationError, match=words):
        load_settings(environ=environ)


def test_unknown_keys_in_the_file_are_refused(tmp_path):
    config = tmp_path / "adapter.toml"
    config.write_text("[adapter]\ndatabse_url = 'typo'\n")
    with pytest.raises(ConfigurationError, match="databse_url"):
        load_settings(config, environ={})


def test_a_caller_bound_to_billers_needs_biller_numbers(tmp_path):
    from adapter.app import guard_for

    config = tmp_path / "adapter.toml"
    config.write_text('[callers.pmc]\npassword = "x"\nempresas = ["12"]\n')
    with pytest.raises(ConfigurationError, match="caller pmc: biller numbers are 4 digits"):
        guard_for(load_settings(config, environ={}))
