"""The web pages in real headless Chromium (Debian's), against the running service.

Screenshots at desktop and phone widths go to tests/artifacts/ (ignored by git).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow

ARTIFACTS = REPO / "tests" / "artifacts"
PAGES = {"Home": "/", "Technical Details": "/technical", "Demo": "/demo", "About": "/about"}
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


@pytest.fixture(scope="module")
def playwright():
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (./test.sh installs it as root)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright):
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--no-first-run"],
    )  # fmt: skip
    yield browser
    browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.console_errors = []
    page.on("console", lambda m: m.type == "error" and page.console_errors.append(f"{m.text} {m.location}"))
    page.on("pageerror", lambda e: page.console_errors.append(str(e)))
    yield page
    context.close()


def shoot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}-desktop.png"), full_page=True)
    page.set_viewport_size({"width": 375, "height": 800})
    page.screenshot(path=str(ARTIFACTS / f"{name}-phone.png"), full_page=True)
    overflow = page.evaluate("document.documentElement.scrollWidth > window.innerWidth + 1")
    assert not overflow, f"{name} scrolls sideways at phone width"
    page.set_viewport_size({"width": 1280, "height": 900})


@pytest.mark.parametrize("name", list(PAGES))
def test_page_loads_without_errors(server, page, name):
    response = page.goto(server.url + PAGES[name])
    assert response.status == 200
    page.wait_for_load_state("networkidle")
    nav = page.get_by_role("navigation", name="Main")
    for link in PAGES:
        assert nav.get_by_role("link", name=link, exact=True).count() == 1
    assert nav.get_by_role("link", name=name, exact=True).get_attribute("aria-current") == "page"
    assert page.locator("h1").count() == 1
    shoot(page, name.lower().replace(" ", "-"))
    assert page.console_errors == []


def test_home_is_the_root_and_links_api_docs(server, page):
    page.goto(server.url + "/")
    assert "Speech emotion recognition" in page.title()
    page.get_by_role("link", name="API docs").first.click()
    page.wait_for_selector(".swagger-ui .opblock", timeout=20_000)
    assert page.locator("text=/predict").count() >= 1
    assert page.console_errors == []


def test_technical_details_come_from_the_model(server, page):
    import requests

    info = requests.get(server.url + "/model", timeout=10).json()
    page.goto(server.url + "/technical")
    text = page.locator("main").inner_text()
    assert info["version"] in page.locator("footer").inner_text()
    assert f"{info['feature_config']['n_mfcc']} MFCCs" in text
    assert "Speaker-independent" in text or "no evaluation" in text
    if "Speaker-independent" in text:  # the bundled model's per-corpus and never-heard tables
        for corpus in ("ravdess", "emodb", "nemo", "ased"):
            assert corpus in text
        assert "telephone" in text and "1 s around the speech" in text and "A corpus never heard" in text
        assert "uncertain flag" in text and "flagged uncertain" in text
    img = page.locator("img[alt^='Confusion matrix']")
    if img.count():
        assert page.evaluate("(img) => img.naturalWidth > 0", img.element_handle())


def test_demo_upload_shows_a_result(server, page, speech_clip):
    page.goto(server.url + "/demo")
    page.get_by_label("Audio file").set_input_files(str(speech_clip))
    page.get_by_role("button", name="Analyse file").click()
    page.wait_for_selector("#result:not([hidden])", timeout=30_000)
    # this clip's answer (about 0.3) is under the model's threshold: the page says "Unsure"
    # and lists the top three
    assert page.locator("#emotion").text_content() == "Unsure:"
    assert page.locator("#confidence").text_content().count("%") == 3
    assert page.locator(".bar-row").count() == 8
    assert page.locator("#error").is_hidden()
    shoot(page, "demo-result")
    assert page.console_errors == []


def test_demo_microphone_records_and_shows_a_result(server, playwright, speech_clip, tmp_path):
    """Chromium's fake capture device plays a real clip into MediaRecorder; the page sends
    what the browser recorded (WebM/Opus) and shows the answer."""
    from tests.audio_factory import encode, read_mono

    wav = tmp_path / "speech.wav"
    samples, rate = read_mono(speech_clip)
    wav.write_bytes(encode(samples, rate, "WAV", "PCM_16"))
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
        "--no-sandbox", "--disable-gpu", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}"])  # fmt: skip
    context = browser.new_context(permissions=["microphone"])
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server.url + "/demo")
    page.get_by_role("button", name="Record from microphone").click()
    page.wait_for_selector("#record-status:has-text('3 s')", timeout=15_000)  # the CSP forbids eval
    page.get_by_role("button", name="Stop and analyse").click()
    page.wait_for_selector("#result:not([hidden])", timeout=30_000)
    assert page.locator("#error").is_hidden() and page.locator(".bar-row").count() == 8
    name, rest = page.locator("#meta").text_content().split(": ", 1)
    assert name == "recording.webm"  # what Chromium's MediaRecorder made, sent as it is
    duration = float(rest.split(" s of audio")[0])
    assert 2.5 < duration < 6
    assert errors == []
    browser.close()


def test_demo_long_clip_shows_a_timeline(server, page, ravdess_root, tmp_path):
    import numpy as np

    from tests.audio_factory import encode, read_mono

    parts = [read_mono(p) for p in sorted((ravdess_root / "Actor_02").glob("*.flac"))[:3]]
    path = tmp_path / "long.wav"
    path.write_bytes(encode(np.concatenate([s for s, _ in parts]), parts[0][1]))
    page.goto(server.url + "/demo")
    page.get_by_label("Audio file").set_input_files(str(path))
    page.get_by_role("button", name="Analyse file").click()
    page.wait_for_selector("#timeline-wrap:not([hidden])", timeout=30_000)
    assert page.locator(".segment").count() >= 4


def test_demo_invalid_file_shows_an_error(server, page, tmp_path):
    bad = tmp_path / "notes.wav"
    bad.write_text("this is not audio")
    page.goto(server.url + "/demo")
    page.get_by_label("Audio file").set_input_files(str(bad))
    page.get_by_role("button", name="Analyse file").click()
    error = page.get_by_role("alert")
    error.wait_for(state="visible", timeout=30_000)
    assert "not audio" in error.inner_text()
    assert page.locator("#result").is_hidden()
    shoot(page, "demo-error")


def test_keyboard_reaches_the_demo_controls(server, page):
    page.goto(server.url + "/demo")
    focused = []
    for _ in range(12):
        page.keyboard.press("Tab")
        focused.append(page.evaluate("document.activeElement.id || document.activeElement.textContent.trim()"))
    assert "audio-file" in focused and "analyse" in focused and "record" in focused


def test_static_render(tmp_path):
    from ser.inference import BUNDLED_MODEL
    from web.pages import render_site

    written = render_site(tmp_path, BUNDLED_MODEL)
    assert sorted(p.name for p in written) == ["about.html", "demo.html", "index.html", "technical.html"]
    html = (tmp_path / "index.html").read_text()
    assert 'href="technical.html"' in html and "static/style.css" in html
    assert "http" not in html.split("<body>")[0]  # no external stylesheets, fonts or scripts
