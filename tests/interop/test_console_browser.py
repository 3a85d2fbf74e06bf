"""The back office as a person uses it: Debian's chromium, headless, driven through its
chromedriver (Selenium; no browser is downloaded), against a real server. A screenshot
of each page is kept in ``build/console-screenshots/`` (CI keeps it as an artifact).

Without chromium and chromedriver the test is skipped, saying so; under CI
(PMC_ADAPTER_TEST_REQUIRE_INTEROP=1, .ci/run installs them) it fails instead.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from support.console import PASSWORDS, console_server, observed_payment, soap_client
from support.data import unique

ROOT = Path(__file__).resolve().parents[2]
SHOTS = Path(os.environ.get("PMC_ADAPTER_TEST_ARTIFACTS", ROOT / "build")) / \
    "console-screenshots"
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
REQUIRE = os.environ.get("PMC_ADAPTER_TEST_REQUIRE_INTEROP") == "1"


@pytest.fixture(scope="module")
def chrome():
    if not (CHROMIUM and DRIVER):
        reason = "Debian's chromium and chromium-driver are not installed (apt install " \
                 "chromium chromium-driver)"
        if REQUIRE:
            pytest.fail(reason + " (PMC_ADAPTER_TEST_REQUIRE_INTEROP=1)")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1280,1000", "--disable-gpu"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(DRIVER))
    driver.implicitly_wait(5)
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


@pytest.fixture
def console(own_database, tmp_path):
    with console_server(own_database, tmp_path) as server:
        yield server


def submitted(driver, button, until_path: str | None = None) -> None:
    """Click a form's button and wait for the next page (its URL's path, or any new
    document) to be loaded."""
    from selenium.webdriver.support.ui import WebDriverWait

    old = driver.find_element("tag name", "html")
    button.click()

    def arrived(_):
        try:
            old.is_enabled()  # raises once the old document is gone
            return False
        except Exception:
            pass
        path = driver.execute_script("return location.pathname")
        return until_path is None or path == until_path
    WebDriverWait(driver, 15).until(arrived)


def shot(driver, name: str) -> None:
    path = SHOTS / f"{name}.png"
    assert driver.save_screenshot(str(path)), f"no screenshot of {name}"
    assert path.stat().st_size > 5000  # a page, not a blank


def test_a_person_resolves_an_observed_payment_in_the_browser(chrome, console):
    from selenium.webdriver.common.by import By

    pmc = soap_client(console)
    customer = unique("B")
    notice = observed_payment(pmc, customer)
    driver, base = chrome, console.base_url

    driver.get(base + "/console/observed")  # no session: the login form
    assert driver.current_url.endswith("/console/login")
    shot(driver, "login")
    driver.find_element(By.ID, "username").send_keys("ana")
    driver.find_element(By.ID, "password").send_keys(PASSWORDS["ana"])
    submitted(driver, driver.find_element(By.CSS_SELECTOR, "form.login button"), "/console/")
    assert "at a glance" in driver.find_element(By.TAG_NAME, "h1").text
    assert driver.find_elements(By.CSS_SELECTOR, "svg rect")  # the day's chart
    shot(driver, "today")

    driver.get(base + "/console/observed")
    section = driver.find_element(By.ID, f"p-{notice.idRecibo}")
    assert f"{customer}-TYPO" in section.text
    shot(driver, "observed")
    # a second tab with the same page open: it will act after the first
    first = driver.current_window_handle
    driver.switch_to.new_window("tab")
    second = driver.current_window_handle
    driver.get(base + "/console/observed")
    driver.switch_to.window(first)

    form = section.find_element(By.CSS_SELECTOR, "form[action='/console/observed/apply']")
    invoice = form.find_element(By.NAME, "invoice")
    invoice.clear()
    invoice.send_keys(f"{customer}-F1")
    submitted(driver, form.find_element(By.TAG_NAME, "button"), "/console/observed")
    message = driver.find_element(By.CSS_SELECTOR, "p.message").text
    assert message == f"Payment {notice.idRecibo} applied to invoice {customer}-F1."
    assert not driver.find_elements(By.ID, f"p-{notice.idRecibo}")  # gone from the list
    shot(driver, "observed-applied")
    # the invoice is paid, as PMC sees it
    assert pmc.service.ConsultarDeuda(idEmpresa="1234", idCliente=customer).codigoRespuesta == 2

    driver.switch_to.window(second)  # the stale tab tries the same decision
    stale = driver.find_element(By.ID, f"p-{notice.idRecibo}")
    stale.find_element(By.CSS_SELECTOR, "form[action='/console/observed/dismiss'] "
                                        "input[name='reason']").send_keys("duplicate")
    submitted(driver, stale.find_element(By.CSS_SELECTOR, "form[action='/console/observed/"
                                                          "dismiss'] button"))
    error = driver.find_element(By.CSS_SELECTOR, "p.error").text
    assert f"payment {notice.idRecibo} was already applied by ana" in error
    shot(driver, "observed-already-done")
    driver.close()
    driver.switch_to.window(first)

    for page in ("reconciliation", "outbox"):
        driver.get(f"{base}/console/{page}")
        assert driver.find_element(By.TAG_NAME, "h1").text
        shot(driver, page)
    driver.get(f"{base}/console/payments?operation=OP-{customer}")
    row = driver.find_element(By.XPATH, f"//td[text()='{notice.idRecibo}']/..")
    assert "resolved" in row.text
    shot(driver, "payments")

    submitted(driver, driver.find_element(By.CSS_SELECTOR, "form.logout button"),
              "/console/login")
    assert driver.current_url.endswith("/console/login")
    driver.get(base + "/console/")
    assert driver.current_url.endswith("/console/login")  # signed out for good
