"""The web pages in real headless Chromium (Debian's), against the running service.

Screenshots at desktop and phone widths go to tests/artifacts/ (ignored by git).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ser.config import LABELS
from ser.inference import BUNDLED_MODEL, metadata_json, read_model_info
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
        assert "telephone" in text and "1 s around the speech" in text
        evaluation = metadata_json(read_model_info(BUNDLED_MODEL), "evaluation") or {}
        assert ("A corpus never heard" in text) == bool(evaluation.get("leave_one_corpus_out"))
        # folds of another recipe than the served model's say so, setting by setting
        differences = evaluation.get("recipe_differences") or {}
        assert ("differ from the served model" in text) == bool(differences)
        assert all(key in text for key in differences)
        assert "uncertain flag" in text and "flagged uncertain" in text
    # a distilled model names its teacher
    assert ("distilled from an ensemble" in text) == bool(metadata_json(read_model_info(BUNDLED_MODEL), "teacher"))
    # an ensemble says whether its members shared their validation speakers
    served = read_model_info(BUNDLED_MODEL)
    members = (metadata_json(served, "architecture") or {}).get("ensemble_members") or 1
    shared = (metadata_json(served, "train_config") or {}).get("rotate_validation") is False
    assert ("sharing validation speakers" in text) == (members > 1 and shared)
    live = REPO / "loadtests" / "results" / "live_benchmark.json"
    if live.exists():  # the live-stream benchmark's table, from its result file
        rows = json.loads(live.read_text())["results"]
        assert "Live streams (WebSocket /live)" in text and f"{rows[-1]['readings']} / {rows[-1]['readings_owed']}" in text
    bench = REPO / "loadtests" / "results" / "benchmark.json"
    pairs = json.loads(bench.read_text()).get("headline_pairs") if bench.exists() else None
    if pairs:  # the headline in alternating turns, each pair's ratio
        assert "in alternating turns" in text and f"{pairs['rps_ratio_median']:.1f}x the throughput" in text
        assert all(f"{pair['rps_ratio']:.1f}x" in text for pair in pairs["pairs"])
    gpu = REPO / "loadtests" / "results" / "gpu_benchmark.json"
    if gpu.exists():  # and the GPU measurement's, with its ratios against the CPU
        measured = json.loads(gpu.read_text())
        first = measured["load"][0]
        assert "On a GPU, measured" in text and f"{first['rps']:.1f}" in text
        for row in measured.get("load_second_machine", [])[-1:]:  # and a second machine's, if measured
            assert f"{row['rps']:.1f}" in text and row["serving"] in text
    img = page.locator("img[alt^='Confusion matrix']")
    if img.count():
        assert page.evaluate("(img) => img.naturalWidth > 0", img.element_handle())


def test_demo_upload_shows_a_result(server, page, sure_and_unsure_clips):
    sure, unsure = sure_and_unsure_clips
    page.goto(server.url + "/demo")
    # an answer the model is sure of is its emotion and one confidence; an uncertain one
    # says "Unsure" and lists the top three
    for clip, shot in ((sure, "demo-result"), (unsure, "demo-result-unsure")):
        page.get_by_label("Audio file").set_input_files(str(clip))
        page.get_by_role("button", name="Analyse file").click()
        page.wait_for_function(
            "(name) => document.querySelector('#meta').textContent.startsWith(name)", arg=clip.name, timeout=30_000
        )
        assert page.locator("#result").is_visible()
        emotion, confidence = page.locator("#emotion").text_content(), page.locator("#confidence").text_content()
        if clip == sure:
            assert emotion in LABELS and confidence.endswith("% confidence)")
        else:
            assert emotion == "Unsure:" and confidence.count("%") == 3
        assert page.locator(".bar-row").count() == 8
        assert page.locator("#error").is_hidden()
        shoot(page, shot)
    assert page.console_errors == []


def fake_microphone(playwright, wav: Path):
    """Chromium whose microphone plays `wav`: (browser, page, the page's errors)."""
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
        "--no-sandbox", "--disable-gpu", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}"])  # fmt: skip
    page = browser.new_context(permissions=["microphone"]).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    return browser, page, errors


def test_demo_microphone_records_and_shows_a_result(server, playwright, speech_clip, tmp_path):
    """Chromium's fake capture device plays a real clip into MediaRecorder; the page sends
    what the browser recorded (WebM/Opus) and shows the answer."""
    from tests.audio_factory import encode, read_mono

    wav = tmp_path / "speech.wav"
    samples, rate = read_mono(speech_clip)
    wav.write_bytes(encode(samples, rate, "WAV", "PCM_16"))
    browser, page, errors = fake_microphone(playwright, wav)
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


def until(page, expression: str, timeout: float = 10.0) -> None:
    """Poll a page expression (the CSP forbids the eval behind wait_for_function)."""
    import time

    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"still false after {timeout} s: {expression}"
        time.sleep(0.1)


def test_demo_long_clip_shows_a_timeline(server, page, ravdess_root, tmp_path):
    """Utterances and silences on a time axis that fits the page, a click plays the
    utterance, and the result downloads as JSON and CSV."""
    from tests.audio_factory import encode, long_recording, read_mono

    parts = [read_mono(p) for p in sorted((ravdess_root / "Actor_02").glob("*.flac"))[:3]]
    samples, _ = long_recording([s for s, _ in parts], parts[0][1], [1.0, 1.5, 0.8, 2.0])
    path = tmp_path / "long.wav"
    path.write_bytes(encode(samples, parts[0][1]))
    page.goto(server.url + "/demo")
    page.get_by_label("Audio file").set_input_files(str(path))
    page.get_by_role("button", name="Analyse file").click()
    page.wait_for_selector("#timeline-wrap:not([hidden])", timeout=30_000)
    assert page.locator("button.segment").count() == 3 and page.locator(".segment.silence").count() == 4
    assert page.locator(".tick").count() >= 3
    # the timeline fits the width: no segment sticks out of it
    box = page.locator("#timeline").bounding_box()
    for seg in page.locator(".segment").all():
        b = seg.bounding_box()
        assert b["x"] >= box["x"] - 1 and b["x"] + b["width"] <= box["x"] + box["width"] + 1
    page.locator("button.segment").nth(1).click()
    until(page, "document.getElementById('player').currentTime > 0")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download CSV").click()
    rows = Path(download.value.path()).read_text().splitlines()
    assert rows[0].startswith("start,end,speech,emotion,confidence") and len(rows) == 8
    with page.expect_download() as download:
        page.get_by_role("button", name="Download JSON").click()
    assert __import__("json").loads(Path(download.value.path()).read_text())["segmentation"] == "speech"
    shoot(page, "demo-timeline")
    assert page.console_errors == []


def test_demo_accepts_a_dropped_file(server, page, speech_clip):
    page.goto(server.url + "/demo")
    data = list(speech_clip.read_bytes())
    transfer = page.evaluate_handle(
        "(bytes) => { const t = new DataTransfer(); "
        "t.items.add(new File([new Uint8Array(bytes)], 'dropped.flac', {type: 'audio/flac'})); return t; }",
        data,
    )
    page.dispatch_event("#upload-form", "dragover", {"dataTransfer": transfer})
    page.dispatch_event("#upload-form", "drop", {"dataTransfer": transfer})
    page.wait_for_selector("#result:not([hidden])", timeout=30_000)
    assert page.locator("#meta").text_content().startswith("dropped.flac: ")
    assert page.locator(".bar-row").count() == 8


def test_demo_timeline_fits_a_phone(server, browser, ravdess_root, tmp_path):
    from tests.audio_factory import encode, long_recording, read_mono

    parts = [read_mono(p) for p in sorted((ravdess_root / "Actor_03").glob("*.flac"))[:8]]
    samples, _ = long_recording([s for s, _ in parts], parts[0][1], [0.8] * 9)
    path = tmp_path / "talk.wav"
    path.write_bytes(encode(samples, parts[0][1]))
    page = browser.new_page(viewport={"width": 360, "height": 740})
    page.goto(server.url + "/demo")
    page.get_by_label("Audio file").set_input_files(str(path))
    page.get_by_role("button", name="Analyse file").click()
    page.wait_for_selector("#timeline-wrap:not([hidden])", timeout=30_000)
    box = page.locator("#timeline").bounding_box()
    assert box["width"] <= 360
    visible = [s.bounding_box() for s in page.locator("button.segment").all()]
    assert len(visible) == 8 and all(b["x"] + b["width"] <= box["x"] + box["width"] + 1 for b in visible)
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    shoot(page, "demo-timeline-phone")
    page.close()


def test_demo_live_mode_streams_the_microphone(server, playwright, ravdess_root, tmp_path):
    """Chromium's fake microphone plays real speech; readings appear while it plays, and
    the utterance timeline when it stops."""
    from tests.audio_factory import encode, long_recording, read_mono

    parts = [read_mono(p) for p in sorted((ravdess_root / "Actor_02").glob("*.flac"))[:2]]
    samples, _ = long_recording([s for s, _ in parts], parts[0][1], [0.5, 1.0, 3.0])
    wav = tmp_path / "speech.wav"
    wav.write_bytes(encode(samples, parts[0][1], "WAV", "PCM_16"))
    browser, page, errors = fake_microphone(playwright, wav)
    page.goto(server.url + "/demo")
    page.get_by_role("button", name="Start live").click()
    page.wait_for_selector("#live-wrap:not([hidden])", timeout=15_000)
    page.wait_for_selector(".tick-block:nth-child(6)", timeout=15_000)
    assert page.locator("#live-now").text_content().strip()
    page.wait_for_selector(".tick-block:nth-child(16)", timeout=20_000)
    speech = page.evaluate(
        "[...document.querySelectorAll('.tick-block')].filter(b => !b.classList.contains('quiet')).length"
    )
    assert speech >= 3
    shoot(page, "demo-live")
    page.get_by_role("button", name="Stop").click()
    page.wait_for_selector("#timeline-wrap:not([hidden])", timeout=15_000)
    assert page.locator("button.segment").count() >= 1
    assert page.locator("#error").is_hidden() and errors == []
    browser.close()


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
        focused.append(
            page.evaluate("document.activeElement.id || document.activeElement.textContent.trim()")
        )
    assert "audio-file" in focused and "analyse" in focused and "live" in focused and "record" in focused


def test_static_render(tmp_path):
    from ser.inference import BUNDLED_MODEL
    from web.pages import render_site

    written = render_site(tmp_path, BUNDLED_MODEL)
    assert sorted(p.name for p in written) == ["about.html", "demo.html", "index.html", "technical.html"]
    html = (tmp_path / "index.html").read_text()
    assert 'href="technical.html"' in html and "static/style.css" in html
    assert "http" not in html.split("<body>")[0]  # no external stylesheets, fonts or scripts
