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
    assert settings.served_billers == {"1234", "5678"} and not settings.serves("9999")
    assert settings.billers["1234"].name == "Aguas del Sur"


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
    config = tmp_path / "adapter.toml"
    config.write_text('[callers.pmc]\npassword = "x"\nempresas = ["12"]\n')
    with pytest.raises(ConfigurationError,
                       match="callers.pmc.billers: biller numbers are 4 digits; got 12"):
        load_settings(config, environ={})


# -- every section refuses what it does not know ------------------------------------

@pytest.mark.parametrize("document, words", [
    ('[callers.pmc]\npassword = "x"\nbiller = ["1234"]\n',
     "unknown setting 'biller' in \\[callers.pmc\\] \\(did you mean billers\\?\\)"),
    ('[callers.pmc]\npassword = "x"\noperation = ["Eco"]\n',
     "'operation' in \\[callers.pmc\\] \\(did you mean operations\\?\\)"),
    ('[billers.1234]\nerp_wdsl = "x.wsdl"\n',
     "'erp_wdsl' in \\[billers.1234\\] \\(did you mean erp_wsdl\\?\\)"),
    ('[empresas.1234]\ncob_ftp_pasword = "x"\n',
     "'cob_ftp_pasword' in \\[billers.1234\\] \\(did you mean cob_ftp_password\\?\\)"),
    ('[empresas.1234]\nprefix = "X-"\n', "unknown setting 'prefix' in \\[billers.1234\\]"),
    ('[adapter]\ntls_certificate = "c.pem"\n',
     "'tls_certificate' in \\[adapter\\] \\(did you mean tls_cert"),
    ('[adaptor]\nworkers = 4\n', "unknown setting 'adaptor' in config file .* "
                                 "\\(did you mean adapter\\?\\)"),
    ('[caller.pmc]\npassword = "x"\n', "'caller' .*did you mean callers"),
    ('workers = 4\n', "unknown setting 'workers' in config file"),
    ('[callers.pmc]\npassword = "x"\nbillers = ["1234"]\nempresas = ["5678"]\n',
     "\\[callers.pmc\\] sets billers twice \\(as billers and as its alias empresas\\)"),
    ('[adapter]\nbillers = ["1234"]\nempresas = ["5678"]\n', "sets billers twice"),
    ('[billers.1234]\nname = "A"\n[empresas.5678]\nname = "B"\n',
     "sets billers twice \\(as billers and as its alias empresas\\)"),
    ('[billers.12345]\nname = "A"\n', "\\[billers.12345\\]: biller numbers are 4 digits"),
    ('[callers.pmc]\npassword = 1234\n', "callers.pmc.password must be text, got 1234"),
    ('[callers.pmc]\npassword = "x"\noperations = "Eco"\nbillers = [1234]\n',
     "callers.pmc.billers must be a list of text"),
    ('[billers.1234]\nerp_timeout = "soon"\n', "billers.1234.erp_timeout must be a number"),
    ('[billers.1234]\nerp_auth = "kerberos"\n', "billers.1234.erp_auth: 'kerberos' is not one"),
    ('[billers.1234]\ncob_ftp_tls = "none"\n', "billers.1234.cob_ftp_tls: 'none' is not one"),
    ('[billers.1234]\nerp_options = "prefix=X"\n', "billers.1234.erp_options must be a table"),
    ('[callers]\npmc = "x"\n', "callers.pmc in config file .* must be a table"),
    ('[adapter]\npublic_url = "evil.example"\n', "public_url must be an http\\(s\\) URL"),
    ('[adapter]\npublic_url = "https://u:p@pmc.example/soap"\n', "without credentials"),
    ('[adapter]\nlog_level = "loud"\n', "log_level: 'loud' is not one of"),
    ('[callers.pmc]\naccess_token = "short"\n',
     "callers.pmc.access_token must be at least 16 printable ASCII characters"),
    ('[callers.pmc]\naccess_token = "a token with spaces in it"\n', "without spaces"),
    ('[callers.pmc]\naccess_tokens = "0123456789abcdef0"\n', "did you mean access_token"),
    ('[callers.a]\naccess_token = "0123456789abcdef0"\n'
     '[callers.b]\naccess_token = "0123456789abcdef0"\n',
     "callers a, b: two of them have the same access_token"),
    ('[callers.pmc]\nbillers = ["1234"]\n',
     "caller pmc has no password, no certificate and no access_token"),
])
def test_every_section_refuses_what_it_does_not_know(tmp_path, document, words):
    config = tmp_path / "adapter.toml"
    config.write_text(document)
    with pytest.raises(ConfigurationError, match=words):
        load_settings(config, environ={})


@pytest.mark.parametrize("environ, words", [
    ({"PMC_ADAPTER_EMPRESA": "1234"},
     "unknown environment variable PMC_ADAPTER_EMPRESA \\(did you mean PMC_ADAPTER_EMPRESAS"),
    ({"PMC_ADAPTER_WORKER": "4"}, "PMC_ADAPTER_WORKER \\(did you mean PMC_ADAPTER_WORKERS"),
    ({"PMC_ADAPTER_ERP_OPTIONS": "x"}, "unknown environment variable PMC_ADAPTER_ERP_OPTIONS"),
    ({"PMC_ADAPTER_BILLERS": "1234", "PMC_ADAPTER_EMPRESAS": "5678"},
     "PMC_ADAPTER_BILLERS and its alias PMC_ADAPTER_EMPRESAS are both set"),
])
def test_the_environment_refuses_what_it_does_not_know(environ, words):
    with pytest.raises(ConfigurationError, match=words):
        load_settings(environ=environ)


def test_the_test_suites_own_variables_are_not_the_adapters():
    assert load_settings(environ={"PMC_ADAPTER_TEST_POSTGRES_URL": "x"}) == load_settings(
        environ={})


def test_billers_is_the_name_and_empresas_its_alias_everywhere(tmp_path):
    english, spanish = tmp_path / "en.toml", tmp_path / "es.toml"
    english.write_text('[adapter]\nbillers = ["1234"]\n[callers.pmc]\npassword = "x"\n'
                       'billers = ["1234"]\n[billers.1234]\nname = "Aguas"\n')
    spanish.write_text('[adapter]\nempresas = ["1234"]\n[callers.pmc]\npassword = "x"\n'
                       'empresas = ["1234"]\n[empresas.1234]\nname = "Aguas"\n')
    settings = load_settings(english, environ={})
    assert settings == load_settings(spanish, environ={})
    assert settings.callers["pmc"].billers == {"1234"} and settings.served_billers == {"1234"}
    assert load_settings(environ={"PMC_ADAPTER_EMPRESAS": "1234"}).served_billers == \
        load_settings(environ={"PMC_ADAPTER_BILLERS": "1234"}).served_billers == {"1234"}


def test_each_component_gets_only_the_settings_it_owns(tmp_path):
    config = tmp_path / "adapter.toml"
    config.write_text('[adapter]\nerp_wsdl = "erp.wsdl"\ncob_ftp_password = "ftp-secret"\n'
                      '[billers.1234]\nname = "Aguas del Sur"\ncob_ftp_password = "mine"\n'
                      '[billers.5678]\nerp_timeout = 1.5\nerp_options = { prefix = "X-" }\n')
    settings = load_settings(config, environ={})
    # a section holding only a name and an FTPS password has the global ERP, the same one
    assert settings.erp_for("1234") == settings.erp_for("9999") == settings.erp
    assert hash(settings.erp_for("1234")) == hash(settings.erp)
    other = settings.erp_for("5678")
    assert other.wsdl == "erp.wsdl" and other.timeout == 1.5 and other.options == {"prefix": "X-"}
    assert "ftp-secret" not in repr(vars(settings.erp)) and "mine" not in repr(
        vars(settings.erp_for("1234")))
    assert settings.cob_ftp_for("1234").password == "mine"
    assert settings.cob_ftp_for("5678").password == "ftp-secret"
    assert "mine" not in repr(settings) and "ftp-secret" not in repr(settings)


def test_command_line_overrides_are_checked_as_the_files_keys_are():
    with pytest.raises(ConfigurationError, match="workers must be positive, got 0"):
        load_settings(environ={}, overrides={"workers": 0})
    with pytest.raises(ConfigurationError, match="threads must be a whole number"):
        load_settings(environ={}, overrides={"threads": 2.5})
    assert load_settings(environ={"PMC_ADAPTER_WORKERS": "3"},
                         overrides={"workers": 5, "bind": None}).workers == 5


def test_a_caller_may_be_known_by_its_access_token_alone(tmp_path):
    config = tmp_path / "adapter.toml"
    config.write_text('[callers.pmc]\naccess_token = "a4a0e9a321dd1a4b718f95f5a7e2f177"\n'
                      'billers = ["1234"]\n')
    caller = load_settings(config, environ={}).callers["pmc"]
    assert (caller.access_token, caller.password, caller.billers) == (
        "a4a0e9a321dd1a4b718f95f5a7e2f177", None, frozenset({"1234"}))
    assert "a4a0e9" not in repr(caller)
