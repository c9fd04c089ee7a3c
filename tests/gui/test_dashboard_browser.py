"""The dashboard in a real browser (issue 18, point 5): headless Chromium (Debian's chromium and
chromium-driver, through Selenium) drives the dashboards of two real daemons on 127.0.0.1: it links
them (the LINK question appears live on the other dashboard and is answered there), shares a task and
answers CHOOSELINKPATH with a folder, and sees the file arrive; each page passes axe-core with no serious
or critical violation. Without Chromium the test is skipped, except in CI (``CI`` set), where that fails.

``ECOSYS_SCREENSHOTS=docs/screenshots`` saves a screenshot of each dashboard there."""

from __future__ import annotations

import os
import shutil
from importlib import resources
from pathlib import Path
from typing import Iterator

import pytest

from ecosys_core.settings import HomeLayout
from tests.net.daemons import Daemon, wait_until

CHROMIUM, DRIVER = shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")
if not (CHROMIUM and DRIVER):
    if os.environ.get("CI"):
        raise RuntimeError("CI must run the browser tests: install chromium and chromium-driver (.ci/run does)")
    pytest.skip("no Chromium here (apt-get install chromium chromium-driver)", allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.select import Select  # noqa: E402

pytestmark = pytest.mark.timeout(240)
RESOURCES = "return performance.getEntriesByType('resource').map(e => e.name + ' ' + Math.round(e.duration))"


def browser() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,1300",
                "--disable-gpu", "--no-first-run"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(30)
    return driver


def sign_in(driver: webdriver.Chrome, daemon: Daemon) -> None:
    link = daemon.cli("gui", "--print")
    assert link.returncode == 0, link.stderr
    driver.get(link.stdout.strip())
    try:
        wait_until(lambda: driver.find_element(By.ID, "connection").text == "Live", 20, 0.1, "the page to go live")
    except AssertionError:
        raise AssertionError(f"the page says {driver.find_element(By.ID, 'connection').text!r} at {driver.current_url}: "
                             f"{driver.get_log('browser')} {driver.execute_script(RESOURCES)}\n"
                             f"{daemon.log.read_text()[-3000:]}") from None


def click(driver: webdriver.Chrome, by: str, value: str) -> None:
    """Click the element, found again if the page redrew it meanwhile (live updates replace rows)."""
    def attempt() -> bool:
        try:
            driver.find_element(by, value).click()
            return True
        except (StaleElementReferenceException, NoSuchElementException):
            return False
    wait_until(attempt, 10, 0.1, f"{value} to click")


def choose(driver: webdriver.Chrome, by: str, value: str, text: str) -> None:
    """Pick ``text`` in the select found by ``by``/``value``, found again if the page redrew it meanwhile."""
    def attempt() -> bool:
        try:
            Select(driver.find_element(by, value)).select_by_visible_text(text)
            return True
        except (StaleElementReferenceException, NoSuchElementException):
            return False
    wait_until(attempt, 10, 0.1, f"{text} to choose in {value}")


def shows(driver: webdriver.Chrome, by: str, value: str, text: str = "") -> bool:
    """True when an element found by ``by``/``value`` holds ``text`` (False while the page redraws it)."""
    try:
        return any(text in e.text for e in driver.find_elements(by, value))
    except StaleElementReferenceException:
        return False


def check_accessibility(driver: webdriver.Chrome) -> None:
    script = resources.files("axe_core_python").joinpath("axe.min.js").read_text()
    driver.execute_script(script)
    result = driver.execute_async_script("const done = arguments[0]; axe.run().then(done, (e) => done({error: String(e)}));")
    assert "error" not in result, result
    bad = [(v["id"], v["impact"], v["help"]) for v in result["violations"] if v["impact"] in ("serious", "critical")]
    assert not bad, bad


def screenshot(driver: webdriver.Chrome, name: str) -> None:
    folder = os.environ.get("ECOSYS_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / f"{name}.png"))


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Daemon, Daemon]]:
    a, b = Daemon(tmp_path, "alpha"), Daemon(tmp_path, "beta")
    (a.root / "x.txt").write_text("hello from alpha\n")
    assert a.cli("task", "add", str(a.root), "--name", "docs").returncode == 0
    b.peers = [f"127.0.0.1:{a.port}"]
    a.start()
    b.start()
    try:
        yield a, b
    finally:
        a.stop()
        b.stop()


def test_two_dashboards_link_share_and_sync(pair: tuple[Daemon, Daemon], tmp_path: Path):
    a, b = pair
    wait_until(lambda: a.connected_to(b), 20, what="beta to connect")
    page_a, page_b = browser(), browser()
    try:
        sign_in(page_a, a)
        sign_in(page_b, b)
        assert page_a.find_element(By.ID, "me-name").text == "alpha"
        wait_until(lambda: page_a.find_element(By.ID, "me-qr").get_attribute("naturalWidth") not in (None, "0"),
                   10, 0.1, "the QR code")
        check_accessibility(page_a)
        # link from alpha's dashboard; beta's dashboard shows the question live and answers it
        wait_until(lambda: shows(page_a, By.CSS_SELECTOR, "#devices tr", "beta"), 20, 0.1, "beta on alpha's page")
        click(page_a, By.XPATH, "//tbody[@id='devices']/tr[td[1]='beta']//button")
        wait_until(lambda: shows(page_b, By.CSS_SELECTOR, "#prompts li", "LINK"), 30, 0.1, "the LINK question on beta")
        screenshot(page_b, "prompts")
        check_accessibility(page_b)
        click(page_b, By.XPATH, "//ul[@id='prompts']/li[strong[contains(., 'LINK')]]//button[.='Yes']")
        wait_until(lambda: shows(page_a, By.CSS_SELECTOR, "#devices tr", "linked"), 30, 0.1, "the link on alpha")
        # share the task from alpha's dashboard; beta chooses the folder on its own
        wait_until(lambda: page_a.find_elements(By.CSS_SELECTOR, "tr[data-task='docs'] select"), 20, 0.1, "a share choice")
        choose(page_a, By.CSS_SELECTOR, "tr[data-task='docs'] select", "beta")
        click(page_a, By.CSS_SELECTOR, "tr[data-task='docs'] button")
        wait_until(lambda: shows(page_b, By.CSS_SELECTOR, "#prompts li", "CHOOSELINKPATH"), 30, 0.1, "CHOOSELINKPATH on beta")
        folder = tmp_path / "beta-docs"
        page_b.find_element(By.CSS_SELECTOR, "#prompts li input[name='answer']").send_keys(str(folder))
        click(page_b, By.XPATH, "//ul[@id='prompts']/li//button[.='Use this folder']")
        wait_until(lambda: (folder / "x.txt").exists(), 30, 0.1, "the file on beta")
        assert (folder / "x.txt").read_text() == "hello from alpha\n"
        wait_until(lambda: shows(page_b, By.CSS_SELECTOR, "tr[data-task='docs'] td.files", "1"), 30, 0.1,
                   "the task on beta's page")
        # send a file from alpha's page; beta's page asks, beta accepts there; both see the offer done
        photo = tmp_path / "photo.jpg"
        photo.write_bytes(os.urandom(300_000))
        page_a.find_element(By.ID, "send-files").send_keys(str(photo))
        choose(page_a, By.ID, "send-device", "beta")
        click(page_a, By.CSS_SELECTOR, "#send-form button[type='submit']")
        wait_until(lambda: shows(page_b, By.CSS_SELECTOR, "#prompts li", "OTDL"), 30, 0.1, "the OTDL question on beta")
        assert shows(page_b, By.CSS_SELECTOR, "#prompts li", "photo.jpg")
        click(page_b, By.XPATH, "//ul[@id='prompts']/li[strong[contains(., 'OTDL')]]//button[.='Accept']")
        received = HomeLayout(b.home).largage / "photo.jpg"
        wait_until(lambda: received.exists() and received.read_bytes() == photo.read_bytes(), 30, 0.1, "the photo on beta")
        for page in (page_a, page_b):
            wait_until(lambda page=page: shows(page, By.CSS_SELECTOR, "#offers td.state", "done"), 20, 0.1, "the offer done")
        screenshot(page_a, "devices-and-tasks")
        check_accessibility(page_b)
        page_b.set_window_size(390, 844)  # a phone: the tables become lists
        wait_until(lambda: page_b.find_element(By.ID, "me-name").is_displayed(), 10, 0.1, "the page on a phone")
        screenshot(page_b, "phone")
        check_accessibility(page_b)
    finally:
        page_a.quit()
        page_b.quit()


@pytest.fixture
def alone(tmp_path: Path) -> Iterator[Daemon]:
    a = Daemon(tmp_path, "alpha")
    (a.root / "x.txt").write_text("hello from alpha\n")
    assert a.cli("task", "add", str(a.root), "--name", "docs").returncode == 0
    a.start()
    try:
        yield a
    finally:
        a.stop()


def test_a_bad_folder_gets_a_clear_error_on_the_page(alone: Daemon, tmp_path: Path):
    a = alone
    page = browser()
    try:
        sign_in(page, a)
        page.find_element(By.ID, "add-path").send_keys("relative/folder")
        click(page, By.CSS_SELECTOR, "#add-task button")
        wait_until(lambda: "full path" in page.find_element(By.ID, "error").text, 10, 0.1, "the error")
        page.find_element(By.ID, "add-path").clear()
        page.find_element(By.ID, "add-path").send_keys(str(tmp_path / "missing"))
        click(page, By.CSS_SELECTOR, "#add-task button")
        wait_until(lambda: "does not exist" in page.find_element(By.ID, "error").text, 10, 0.1, "the error")
        made = tmp_path / "photos"
        made.mkdir()
        page.find_element(By.ID, "add-path").clear()
        page.find_element(By.ID, "add-path").send_keys(str(made))
        click(page, By.CSS_SELECTOR, "#add-task button")
        wait_until(lambda: page.find_elements(By.CSS_SELECTOR, "tr[data-task='photos']"), 10, 0.1, "the new task")
        assert page.find_element(By.ID, "error").text == ""
        # a conflict copy beside x.txt: reviewed on the page, the copy kept
        copy = a.root / "x.sync-conflict-20260101-120000-ABCDEF1.txt"
        copy.write_text("the other version\n")
        a.call("rescan", task="docs")
        wait_until(lambda: shows(page, By.CSS_SELECTOR, "tr[data-task='docs'] td.conflicts", "Review 1"), 15, 0.1,
                   "the conflict on the page")
        click(page, By.CSS_SELECTOR, "tr[data-task='docs'] td.conflicts button")
        wait_until(lambda: shows(page, By.ID, "conflict-rows", "by"), 10, 0.1, "the two versions")
        screenshot(page, "conflicts")
        check_accessibility(page)
        click(page, By.XPATH, "//tbody[@id='conflict-rows']/tr/td[3]/button")
        wait_until(lambda: not copy.exists(), 10, 0.1, "the copy kept")
        assert (a.root / "x.txt").read_text() == "the other version\n"
    finally:
        page.quit()


def test_an_app_is_installed_from_the_page_with_its_installer_consented_there(tmp_path: Path, monkeypatch):
    from magasin.publish import publish
    from magasin.serve import make_server, serve_in_thread

    src = Path(__file__).resolve().parents[2] / "magasin" / "sample" / "src"
    publish(src, tmp_path / "magasin", name="Test Magasin")
    server = make_server(tmp_path / "magasin", "127.0.0.1", 0, quiet=True)
    serve_in_thread(server)
    monkeypatch.setenv("ECOSYS_MAGASIN", f"http://127.0.0.1:{server.server_address[1]}/")
    d = Daemon(tmp_path, "alpha").start()
    page = browser()
    try:
        sign_in(page, d)
        wait_until(lambda: page.find_element(By.ID, "magasin").is_displayed(), 10, 0.1, "the Magasin section")
        page.find_element(By.ID, "magasin-term").send_keys("journal")
        click(page, By.CSS_SELECTOR, "#magasin-search button")
        wait_until(lambda: page.find_elements(By.CSS_SELECTOR, "#magasin-results tr[data-app='Journal'] button"),
                   10, 0.1, "Journal in the results")
        click(page, By.XPATH, "//tbody[@id='magasin-results']/tr[@data-app='Journal']//button[.='Details']")
        wait_until(lambda: shows(page, By.ID, "magasin-details", "Versions: 1.0"), 10, 0.1, "Journal's details")
        click(page, By.XPATH, "//tbody[@id='magasin-results']/tr[@data-app='Journal']//button[.='Install']")
        wait_until(lambda: shows(page, By.CSS_SELECTOR, "#prompts li", "INSTALLER"), 30, 0.1, "the installer's consent")
        screenshot(page, "magasin")
        check_accessibility(page)
        click(page, By.XPATH, "//ul[@id='prompts']/li[strong[contains(., 'INSTALLER')]]//button[.='Yes']")
        wait_until(lambda: page.find_elements(By.CSS_SELECTOR, "#magasin-jobs li[data-state='done']"), 60, 0.1,
                   "the install done")
        wait_until(lambda: page.find_elements(By.CSS_SELECTOR, "#magasin-installed tr[data-app='Journal']"), 10, 0.1,
                   "Journal installed")
        assert (d.home / "apps" / "Journal").is_dir()
        wait_until(lambda: any(t["kind"] == "app" for t in d.status()["tasks"]), 20, 0.2, "the app's data task")
    finally:
        page.quit()
        d.stop()
        server.shutdown()
        server.server_close()
