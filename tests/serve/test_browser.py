"""End to end in a real browser: Debian's Chromium, driven by Playwright for Python, on the app
served by uvicorn on a free loopback port. Skipped (with the reason) only where Chromium or
Playwright is not installed; `.ci/run` installs both."""

from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
from PIL import Image

from chestclip.serve import ServerThread, create_app

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
INDICATION = "Cough and fever."


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file():
        pytest.skip(f"Chromium not found at {CHROMIUM} (Debian: apt-get install chromium)")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="Playwright for Python not installed (pip install -e .[dev])"
    )
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def url(evaluated_run, predictor):
    with ServerThread(create_app(evaluated_run, predictor=predictor)) as url:
        yield url


@pytest.fixture
def page(browser, url):
    """A page that records console errors, failed requests and every host it contacts."""
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.problems, page.hosts = [], set()
    page.on("console", lambda m: m.type == "error" and page.problems.append(m.text))
    page.on("pageerror", lambda error: page.problems.append(str(error)))
    page.on("requestfailed", lambda r: page.problems.append(f"{r.url}: {r.failure}"))
    page.on("request", lambda r: page.hosts.add(urlsplit(r.url).netloc))
    yield page
    page.close()


def test_upload_shows_the_api_probabilities_heat_map_zones_and_reports(
    page, url, xray_files, tmp_path
):
    page.goto(url)
    assert "Research use only" in page.inner_text("#notice")
    page.wait_for_selector("#method option[value='cnn-gradcam']", state="attached")
    page.fill("#indication", INDICATION)
    page.set_input_files("#file", xray_files["png"])
    page.wait_for_selector("#results[data-file='a.png']", state="visible")
    page.wait_for_function("document.getElementById('heatmap').naturalWidth > 0")

    with httpx.Client(base_url=url, timeout=60) as client:
        files = {"file": ("a.png", xray_files["png"].read_bytes())}
        api = client.post("/api/predict", files=files, data={"indication": INDICATION}).json()
    assert set(api["probabilities"]) == {"image", "multimodal_indication"}
    for head, probability in api["probabilities"].items():
        shown = page.locator(f"#heads tr[data-head='{head}'] td.probability")
        assert shown.inner_text() == f"{probability:.3f}"
        assert float(shown.get_attribute("data-probability")) == probability
        decision = page.inner_text(f"#heads tr[data-head='{head}'] td.decision")
        assert decision == api["decisions"][head]

    # the images the API returned, decoded by the browser at the model's size
    assert page.evaluate("document.getElementById('xray').naturalWidth") == 64
    assert page.get_attribute("#heatmap", "src") == f"data:image/png;base64,{api['heatmap_png']}"
    page.fill("#opacity", "80")
    assert page.evaluate("getComputedStyle(document.getElementById('heatmap')).opacity") == "0.8"
    assert page.inner_text("#opacity-value") == "80 %"

    zones = page.locator("#zones tbody tr")
    assert zones.count() == len(api["zone_masses"])
    top_zone, top_share = api["top_zones"][0]
    assert zones.first.get_attribute("data-zone") == top_zone  # sorted, largest share first
    assert (
        page.inner_text("#zones tbody tr:first-child td:nth-child(2)") == f"{100 * top_share:.1f} %"
    )
    assert page.locator("#drafts li").count() == len(api["drafts"]) == 3
    assert page.is_hidden("#no-drafts") and page.is_hidden("#error")

    screenshot = tmp_path / "viewer.png"  # pytest keeps it (--basetemp to choose where)
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(screenshot) as image:
        assert image.width == 1200 and image.height >= 900
        assert np.asarray(image.convert("L")).std() > 10  # not a blank page

    # a corrupt file: the page says what is wrong, in one line, and keeps working
    page.set_input_files("#file", xray_files["corrupt"])
    page.wait_for_selector("#error", state="visible")
    assert page.inner_text("#error").startswith("f.png: truncated or corrupt")
    page.problems = [p for p in page.problems if "400 (Bad Request)" not in p]  # expected
    assert page.problems == [], page.problems
    assert page.hosts == {urlsplit(url).netloc}  # nothing fetched from anywhere else


def test_dicom_dropped_on_the_page(page, url, xray_files):
    page.goto(url)
    page.wait_for_selector("#method option", state="attached")
    data = list(xray_files["mono1"].read_bytes())
    page.evaluate(
        """(bytes) => {
            const file = new File([new Uint8Array(bytes)], "e", {type: ""});
            const transfer = new DataTransfer();
            transfer.items.add(file);
            const drop = document.getElementById("drop");
            drop.dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true}));
        }""",
        data,
    )
    page.wait_for_selector("#results[data-file='e']", state="visible")
    assert page.locator("#heads tbody tr").count() == 1  # no indication: the image head only
    assert page.problems == []


def test_api_docs_render_offline(page, url):
    page.goto(f"{url}/docs")
    page.wait_for_selector(".opblock-summary-path[data-path='/api/predict']")
    assert page.problems == []
    assert page.hosts == {urlsplit(url).netloc}


def test_a_server_with_a_token_is_used_from_the_address_fragment(
    browser, evaluated_run, predictor, xray_files
):
    token = "a-long-random-token"
    app = create_app(evaluated_run, predictor=predictor, token=token)
    with ServerThread(app) as url:
        without = browser.new_page()
        without.goto(url)  # without the token: the page says what it needs
        without.wait_for_selector("#error", state="visible")
        assert "this server needs its token" in without.inner_text("#error")
        without.close()
        page = browser.new_page()
        page.goto(f"{url}/#token={token}")
        page.wait_for_selector("#method option[value='cnn-gradcam']", state="attached")
        assert page.evaluate("location.hash") == ""  # not left in the address bar
        page.set_input_files("#file", xray_files["png"])
        page.wait_for_selector("#results[data-file='a.png']", state="visible")
        page.close()


def test_a_refused_image_shows_the_reason_and_no_heat_map(page, url, tmp_path):
    from chestclip.phantom.outliers import photo

    Image.fromarray(photo(np.random.default_rng(0), 300)).save(tmp_path / "photo.png")
    page.goto(url)
    page.wait_for_selector("#method option", state="attached")
    page.set_input_files("#file", str(tmp_path / "photo.png"))
    page.wait_for_selector("#results[data-file='photo.png']", state="visible")
    banner = page.locator("#trust-banner")
    assert banner.is_visible() and banner.inner_text().startswith("No decision: out of")
    assert page.inner_text("#heads tbody td.decision") == "no decision"
    assert page.is_hidden("#heatmap") and page.is_hidden("#zones-layer")
    page.check("#allow-ood")  # scored anyway, still flagged
    page.wait_for_selector("#trust-banner.flagged >> text=Flagged, scored anyway")
    page.wait_for_selector("#heatmap", state="visible")
    assert page.problems == []
