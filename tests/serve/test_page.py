"""The page in a real headless browser (Debian's chromium and chromium-driver, through selenium): pick a
photo, see its copy first, with thumbnails. The screenshot goes to the test's folder, and to
docs/screenshots/serve.png with LOOKALIKE_SAVE_SCREENSHOTS=1."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from helpers import DEMO, REPO

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


@pytest.fixture
def browser(tmp_path):
    if not (CHROMIUM and DRIVER):
        pytest.skip(
            "needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver; "
            ".ci/sysdeps.sh does it as root)"
        )
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (the dev extra)")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1200,860",
    ]:
        opts.add_argument(flag)
    driver = webdriver.Chrome(options=opts, service=Service(executable_path=DRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def test_pick_a_photo_see_its_copy_first(browser, server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    photo = tmp_path / "my_ladybird.jpg"
    photo.write_bytes((DEMO / "Camera/ladybird.jpg").read_bytes())
    browser.get(server.url + "/")
    wait = WebDriverWait(browser, 30)
    wait.until(lambda d: "11 photos" in d.find_element(By.ID, "about").text)
    browser.find_element(By.ID, "file").send_keys(str(photo))
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".hit")) >= 10)
    cards = browser.find_elements(By.CSS_SELECTOR, ".hit")
    first = cards[0]
    assert first.get_attribute("data-path") == "photos/Camera/ladybird.jpg"
    assert first.get_attribute("data-tier") == "duplicate"
    assert "same photo" in first.text and "100.0%" in first.text
    assert "matches in" in browser.find_element(By.ID, "status").text
    # every thumbnail loaded (through /v1/thumb, fetched by the page)
    wait.until(
        lambda d: d.execute_script(
            "return [...document.querySelectorAll('.hit img')].every(i => i.complete && i.naturalWidth > 0)"
        )
    )
    shot = tmp_path / "serve.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    if os.environ.get("LOOKALIKE_SAVE_SCREENSHOTS") == "1":
        shutil.copy(shot, Path(REPO) / "docs" / "screenshots" / "serve.png")
