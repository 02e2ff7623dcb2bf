"""Headless Chromium for the tests: Debian's `chromium` driven by Debian's `chromedriver`.

Plain Python (no pytest), like `servers.py`:

    with browser(tmp_path) as driver:
        driver.get(url)
        wait_for(driver, lambda d: d.find_element(By.ID, "connection").text == "live")

Both binaries come from PATH (`apt-get install chromium chromium-driver`, as scripts/test
does), so Selenium Manager never looks for, or downloads, a browser or driver of its own.
Each browser gets a fresh profile under the given directory and is quit on exit.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.support.wait import WebDriverWait

T = TypeVar("T")

FLAGS = (
    "--headless=new",
    "--no-sandbox",  # root in a container: Chromium's sandbox needs user namespaces
    "--disable-gpu",
    "--disable-dev-shm-usage",  # a small /dev/shm crashes renderers
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",  # no calls home: only loopback is reachable here
    "--disable-component-update",
    "--disable-sync",
    # Chromium still calls home (update, accounts, autofill, time, the search engine):
    # everything but loopback, which Chromium never proxies, goes to a closed local port.
    "--proxy-server=http://127.0.0.1:9",
    "--window-size=1280,900",
)
START_SECONDS = 60  # chromedriver's own wait for the browser to come up


class BrowserError(RuntimeError):
    """Chromium or chromedriver missing, or the browser would not start."""


def binaries() -> tuple[str, str]:
    """(chromium, chromedriver) from PATH, or BrowserError naming the Debian packages."""
    chromium = shutil.which("chromium")
    chromedriver = shutil.which("chromedriver")
    if chromium is None or chromedriver is None:
        raise BrowserError(
            "headless browser tests need Debian's chromium and chromedriver on PATH: "
            "apt-get install chromium chromium-driver"
        )
    return chromium, chromedriver


@contextlib.contextmanager
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    """A headless Chromium with a fresh profile in `tmp_path`; quit (and its driver) on exit.

    chromedriver's log is `tmp_path/chromedriver-*/chromedriver.log`, kept for post-mortems.
    """
    chromium, chromedriver = binaries()
    workdir = Path(tempfile.mkdtemp(prefix="chromedriver-", dir=tmp_path))
    profile = workdir / "profile"
    profile.mkdir()

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})

    service = Service(
        executable_path=chromedriver,
        log_output=str(workdir / "chromedriver.log"),
        # A proxy from the environment would take even the loopback requests elsewhere.
        env={k: v for k, v in os.environ.items() if "proxy" not in k.lower()},
    )
    try:
        driver = webdriver.Chrome(service=service, options=options)
    except Exception as exc:  # SessionNotCreatedException, WebDriverException, OSError
        log = workdir / "chromedriver.log"
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"
        raise BrowserError(
            f"Chromium did not start: {exc}\n--- chromedriver log ---\n{tail}"
        ) from exc
    try:
        driver.set_page_load_timeout(START_SECONDS)
        yield driver
    finally:
        driver.quit()


def wait_for(
    driver: WebDriver,
    predicate: Callable[[WebDriver], T],
    timeout: float = 30,
    message: str = "",
) -> T:
    """Poll `predicate(driver)` until it returns something truthy (returned), or time out.

    An element not there yet, or replaced while being read, counts as "not yet".
    """
    wait = WebDriverWait(
        driver,
        timeout,
        poll_frequency=0.1,
        ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
    )
    return wait.until(predicate, message)


def console_log(driver: WebDriver) -> list[str]:
    """The page's console messages since the last call (errors, CSP reports, exceptions)."""
    return [f"{entry['level']}: {entry['message']}" for entry in driver.get_log("browser")]
