"""The playground (GET /) in a real browser: Playwright drives Debian's headless chromium against the service on
a real uvicorn with the committed models, and checks what a person sees. Skips without /usr/bin/chromium (CI's
.ci/run installs it). PLAYGROUND_SCREENSHOTS=docs writes the screenshots in the README and docs/api.md (default: a
temp folder)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from tests.support.browser import NEEDS_CHROMIUM, new_page
from tests.support.digit_images import noise_png, render
from tests.support.paths import ROOT, without_explanations
from tests.support.service import serve

pytestmark = [pytest.mark.slow, NEEDS_CHROMIUM]
sync_api = pytest.importorskip("playwright.sync_api")


def open_playground(browser, base_url: str, **options):
    """The playground in a new page, served with its Content-Security-Policy, violations recorded."""
    page = new_page(browser, **options)
    response = page.goto(base_url + "/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    return page


@pytest.fixture
def page(browser, base_url: str) -> Iterator:
    page = open_playground(browser, base_url, viewport={"width": 1000, "height": 900})
    outside: list[str] = []
    page.on("request", lambda r: None if r.url.startswith((base_url, "data:")) else outside.append(r.url))
    yield page
    violations = page.evaluate("window.violations")
    page.close()
    assert outside == []  # offline: nothing from another origin
    assert violations == []  # the page works within its Content-Security-Policy


def shot(page, name: str, tmp_path: Path, selector: str) -> None:
    folder = Path(os.environ.get("PLAYGROUND_SCREENSHOTS", tmp_path))
    (ROOT / folder if not folder.is_absolute() else folder).mkdir(parents=True, exist_ok=True)
    page.locator(selector).screenshot(path=str((ROOT / folder if not folder.is_absolute() else folder) / name))


PAINTED = """(s) => {
    const c = document.querySelector(s);
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i] + d[i + 1] + d[i + 2] > 60) n++;
    return n;
}"""


def painted_pixels(page, selector: str) -> int:
    """Pixels of a canvas that are not (near) black."""
    return page.evaluate(PAINTED, selector)


def test_drawing_a_7_with_the_mouse_reads_7_and_shows_the_heatmap(page, tmp_path: Path) -> None:
    box = page.locator("#pad").bounding_box()

    def to(x: float, y: float) -> tuple[float, float]:
        return box["x"] + x * box["width"] / 280, box["y"] + y * box["height"] / 280

    page.mouse.move(*to(70, 60))
    page.mouse.down()
    for x in range(70, 215, 10):  # the top bar
        page.mouse.move(*to(x, 60))
    for step in range(1, 18):  # the stem, down and to the left
        page.mouse.move(*to(210 - step * 5, 60 + step * 10))
    page.mouse.up()
    sync_api.expect(page.locator("#digit-answer")).to_have_text("7", timeout=10_000)
    assert painted_pixels(page, "#digit-heat") > 100 and painted_pixels(page, "#digit-input") > 50
    assert page.locator("#digit-probs li").count() == 10
    sync_api.expect(page.locator("#digit-method")).to_have_text("gradient × input")
    shot(page, "playground-digit.png", tmp_path, "#digit-panel")


def test_a_photo_is_classified_with_its_heatmap_and_a_missing_model_says_how_to_install_it(page) -> None:
    page.select_option("#photo-model", "fashion")
    page.set_input_files("#photo-file", str(ROOT / "examples" / "ankle_boot.jpg"))
    sync_api.expect(page.locator("#photo-answer")).to_have_text("Ankle boot", timeout=10_000)
    assert page.locator("#photo-topk li").count() == 5
    sync_api.expect(page.locator("#photo-overlay")).to_be_visible()
    sync_api.expect(page.locator("#photo-note")).to_have_text("Heatmap: gradient × input")
    page.select_option("#photo-model", "image")  # the same photo, sent to the model this service lacks
    sync_api.expect(page.locator("#photo-install")).to_contain_text("not installed", timeout=10_000)
    sync_api.expect(page.locator("#photo-install pre")).to_contain_text("train_transfer")


def test_a_model_without_an_explanation_export_still_answers_and_says_why_there_is_no_heatmap(browser) -> None:
    with serve("uvicorn", Settings(models_dir=without_explanations("fashion"), models=["fashion"])) as client:
        page = open_playground(browser, str(client.base_url).rstrip("/"))
        page.select_option("#photo-model", "fashion")
        page.set_input_files("#photo-file", str(ROOT / "examples" / "ankle_boot.jpg"))
        sync_api.expect(page.locator("#photo-answer")).to_have_text("Ankle boot", timeout=10_000)
        sync_api.expect(page.locator("#photo-note")).to_contain_text("no explanation export")
        sync_api.expect(page.locator("#photo-overlay")).to_be_hidden()
        page.close()


def test_a_negated_review_is_negative_with_highlighted_words_and_errors_show_the_service_message(
    page, tmp_path: Path
) -> None:
    page.fill("#review-text", "The acting was not good and the plot made no sense.")
    page.select_option("#review-model", "lstm")
    page.click("#review-go")
    heading = page.locator("#review-results h3").first
    sync_api.expect(heading).to_contain_text("lstm: NEGATIVE", timeout=10_000)
    assert page.locator("#review-results .words span").count() == 11  # every word the user wrote
    assert page.locator("#review-results .attr-neg").count() >= 1
    shot(page, "playground-review.png", tmp_path, "#review-panel")
    page.select_option("#review-model", "distilbert")  # not installed here: the service's own message shows
    page.click("#review-go")
    sync_api.expect(page.locator("#review-results h3").first).to_contain_text("not installed", timeout=10_000)


def test_loading_the_example_series_draws_the_chart_with_flags(page, tmp_path: Path) -> None:
    page.click("#series-example")
    sync_api.expect(page.locator("#series-summary")).to_contain_text("1008 points", timeout=30_000)
    points = page.locator("#series-chart polyline.values").get_attribute("points") or ""
    assert len(points.split()) == 1008
    assert page.locator("#series-chart circle.flag").count() > 0
    assert page.locator("#series-chart rect.region").count() > 0
    shot(page, "playground-series.png", tmp_path, "#series-panel")
    page.fill("#series-text", "1\n2\n3")
    page.click("#series-go")
    sync_api.expect(page.locator("#series-error")).not_to_be_empty()


def test_markup_injected_into_the_page_cannot_run_script(browser, base_url: str) -> None:
    """The policy is enforced: an inline handler and an inline script (what an injection would add) do not run."""
    page = open_playground(browser, base_url)
    page.evaluate("""() => {
        document.body.insertAdjacentHTML('beforeend', '<img src="/nowhere.png" onerror="window.ran = 1">');
        const script = document.createElement('script');
        script.textContent = 'window.ran = 2';
        document.body.append(script);
    }""")
    deadline = time.monotonic() + 10  # polled from here: wait_for_function's own poller is an eval the policy refuses
    while len(page.evaluate("window.violations")) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert page.evaluate("window.ran") is None
    assert all(v.startswith("script-src") for v in page.evaluate("window.violations"))
    page.close()


def test_keyboard_reaches_every_control_and_the_page_fits_a_phone(browser, base_url: str) -> None:
    page = open_playground(browser, base_url, viewport={"width": 375, "height": 740})
    assert page.evaluate("document.documentElement.scrollWidth") <= 375  # no sideways scrolling
    focused = set()
    for _ in range(25):
        page.keyboard.press("Tab")
        focused.add(page.evaluate("document.activeElement.id"))
    assert {"clear", "photo-model", "review-text", "review-go", "series-example", "series-go"} <= focused
    for control in ("photo-model", "review-text", "review-model", "series-text"):
        assert page.locator(f"label[for={control}]").count() == 1
    page.close()


def test_the_page_opens_on_the_apis_default_models_and_its_limits_come_from_their_metadata(page, base_url: str) -> None:
    models = {m["name"]: m for m in httpx.get(base_url + "/models").json()}
    default = next(m for m in models.values() if m["task"] == "text-classification/sentiment" and m["default"])
    assert default["name"] == "minilm"  # the committed models' default, for the rest of this test to mean something
    sync_api.expect(page.locator("#review-model")).to_have_value("minilm", timeout=10_000)
    installed = [m["name"] for m in models.values() if m["task"] == default["task"] and m["state"] == "ready"]
    all_option = page.locator("#review-model option[value=all]")
    assert "distilbert" not in all_option.inner_text() and all(name in all_option.inner_text() for name in installed)
    page.select_option("#review-model", "all")  # every installed model answers, none "not installed"
    page.click("#review-go")
    sync_api.expect(page.locator("#review-results .words")).to_have_count(len(installed), timeout=20_000)
    assert page.locator("#review-results .error").count() == 0
    detector = next(m for m in models.values() if m["task"] == "anomaly-detection/timeseries" and m["default"])
    sync_api.expect(page.locator("#series-min")).to_have_text(str(detector["input"]["min_points"]))
    icon = page.locator("link[rel=icon]").get_attribute("href")
    assert httpx.get(base_url + icon).status_code == 200


def test_result_pictures_are_not_black_boxes_before_an_answer(page) -> None:
    for canvas in ("#digit-input", "#digit-heat"):
        colour = page.evaluate(f"getComputedStyle(document.querySelector('{canvas}')).backgroundColor")
        assert colour not in ("rgb(0, 0, 0)", "rgba(0, 0, 0, 0)"), colour


DARK = """(s) => {
    const c = document.querySelector(s);
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i] + d[i + 1] + d[i + 2] < 300) n++;
    return n;
}"""


def test_every_panel_clears_its_old_answer_on_a_new_request_or_an_error(page) -> None:
    box = page.locator("#pad").bounding_box()  # a stroke on the pad, then a digit uploaded: the drawing goes
    page.mouse.move(box["x"] + 140, box["y"] + 40)
    page.mouse.down()
    page.mouse.move(box["x"] + 140, box["y"] + 240, steps=10)
    page.mouse.up()
    sync_api.expect(page.locator("#digit-answer")).not_to_have_text("–", timeout=10_000)
    page.set_input_files("#digit-file", str(ROOT / "examples" / "digit.png"))
    page.wait_for_function("() => document.querySelector('#pad').getContext('2d')"
                           ".getImageData(140, 140, 1, 1).data[0] === 255")
    assert page.evaluate(DARK, "#pad") == 0
    sync_api.expect(page.locator("#digit-probs li")).to_have_count(10, timeout=10_000)
    page.set_input_files("#digit-file", files=[{"name": "x.png", "mimeType": "image/png", "buffer": b"not a png"}])
    sync_api.expect(page.locator("#digit-error")).not_to_be_empty(timeout=10_000)
    sync_api.expect(page.locator("#digit-answer")).to_have_text("–")
    assert page.locator("#digit-probs li").count() == 0 and painted_pixels(page, "#digit-input") == 0

    page.select_option("#photo-model", "fashion")
    page.set_input_files("#photo-file", str(ROOT / "examples" / "ankle_boot.jpg"))
    sync_api.expect(page.locator("#photo-answer")).to_have_text("Ankle boot", timeout=10_000)
    page.select_option("#photo-model", "image")  # not installed here: no label from the other model stays
    sync_api.expect(page.locator("#photo-install")).to_be_visible(timeout=10_000)
    sync_api.expect(page.locator("#photo-answer")).to_have_text("–")
    assert page.locator("#photo-topk li").count() == 0 and page.locator("#photo-overlay").is_hidden()

    page.click("#series-example")
    sync_api.expect(page.locator("#series-summary")).not_to_be_empty(timeout=30_000)
    page.fill("#series-text", "1\n2\n3")
    page.click("#series-go")
    sync_api.expect(page.locator("#series-error")).not_to_be_empty(timeout=10_000)
    assert page.locator("#series-summary").inner_text() == ""
    assert page.locator("#series-chart > *").count() == 0


def first_request_held(page, url, send: Callable[[], None], what: str):
    """Hold the first request to `url` (later ones go on), `send` it, and return it once the page has made it."""
    held: list = []
    page.route(url, lambda route: held.append(route) if not held else route.continue_())
    send()
    deadline = time.monotonic() + 10
    while not held and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert held, f"{what} sent no request"
    return held[0]


def test_a_late_answer_to_an_earlier_drawing_does_not_replace_a_newer_answer(page) -> None:
    """The pad's live request is held until an upload has been answered (an error here): releasing it then must not
    put the drawing's answer back over the upload's."""
    def draw() -> None:
        box = page.locator("#pad").bounding_box()
        page.mouse.move(box["x"] + 140, box["y"] + 40)
        page.mouse.down()
        page.mouse.move(box["x"] + 140, box["y"] + 240, steps=10)
        page.mouse.up()

    held = first_request_held(page, "**/explain/digit", draw, "the drawing")
    page.set_input_files("#digit-file", files=png("x.png", b"not a png"))
    sync_api.expect(page.locator("#digit-error")).not_to_be_empty(timeout=10_000)
    held.continue_()
    page.wait_for_timeout(1_000)  # the held answer arrives (and, before the fix, replaced the error)
    assert page.locator("#digit-error").inner_text() != "" and page.locator("#digit-answer").inner_text() == "–"


def test_a_late_answer_from_the_model_chosen_before_does_not_replace_the_newer_one(page) -> None:
    """The photo panel: fashion's answer is held until the panel has switched to a model that is not installed here;
    releasing it then leaves the install note and no label."""
    def send() -> None:
        page.select_option("#photo-model", "fashion")
        page.set_input_files("#photo-file", str(ROOT / "examples" / "ankle_boot.jpg"))

    held = first_request_held(page, lambda url: "/explain/image" in url and "model=fashion" in url, send, "the photo")
    page.select_option("#photo-model", "image")
    sync_api.expect(page.locator("#photo-install")).to_be_visible(timeout=10_000)
    held.continue_()
    page.wait_for_timeout(1_000)  # fashion's answer arrives (and, before the fix, was shown under the note)
    assert page.locator("#photo-answer").inner_text() == "–" and page.locator("#photo-topk li").count() == 0


def png(name: str, data: bytes) -> list[dict]:
    return [{"name": name, "mimeType": "image/png", "buffer": data}]


def test_an_answer_flagged_out_of_distribution_shows_a_badge_with_its_reason_and_score(
    page, base_url: str, tmp_path: Path
) -> None:
    """Noise sent to the digit panel gets "not a digit?" with the service's reason and score; a real digit, an
    error, or an answer not checked (in_distribution null) clears it. The same in the photo and review panels."""
    noise = noise_png(48, 1)
    flagged = httpx.post(base_url + "/predict/digit", content=noise, headers={"content-type": "image/png"}).json()
    assert flagged["in_distribution"] is False and flagged["ood_score"] > 1  # what the badge should say
    badge = page.locator("#digit-ood")
    sync_api.expect(badge).to_be_hidden()
    page.set_input_files("#digit-file", files=png("noise.png", noise))
    sync_api.expect(badge).to_be_visible(timeout=10_000)
    sync_api.expect(badge).to_contain_text("not a digit?")
    sync_api.expect(badge).to_contain_text(f"ood_score {flagged['ood_score']:.2f}")
    sync_api.expect(badge).to_contain_text(flagged["ood_reason"])
    assert badge.get_attribute("title") == flagged["ood_reason"]
    shot(page, "playground-ood.png", tmp_path, "#digit-panel")
    page.set_input_files("#digit-file", files=png("three.png", render(3, "mnist_28")))
    sync_api.expect(page.locator("#digit-answer")).to_have_text("3", timeout=10_000)
    sync_api.expect(badge).to_be_hidden()
    page.set_input_files("#digit-file", files=png("noise.png", noise))
    sync_api.expect(badge).to_be_visible(timeout=10_000)
    page.set_input_files("#digit-file", files=png("x.png", b"not a png"))  # an error clears it too
    sync_api.expect(page.locator("#digit-error")).not_to_be_empty(timeout=10_000)
    sync_api.expect(badge).to_be_hidden()

    def unchecked(route) -> None:  # the same answer from an artifact without thresholds
        response = route.fetch()
        route.fulfill(response=response, json={**response.json(), "in_distribution": None, "ood_score": None})

    page.route("**/explain/digit", unchecked)
    page.set_input_files("#digit-file", files=png("noise.png", noise))
    sync_api.expect(page.locator("#digit-answer")).to_have_text(str(flagged["digit"]), timeout=10_000)
    sync_api.expect(badge).to_be_hidden()
    page.unroute("**/explain/digit")

    photo = page.locator("#photo-ood")
    page.select_option("#photo-model", "fashion")
    page.set_input_files("#photo-file", files=png("seven.png", render(7, "mnist_28")))
    sync_api.expect(photo).to_contain_text("not a garment?", timeout=10_000)
    page.set_input_files("#photo-file", str(ROOT / "examples" / "ankle_boot.jpg"))
    sync_api.expect(page.locator("#photo-answer")).to_have_text("Ankle boot", timeout=10_000)
    sync_api.expect(photo).to_be_hidden()

    page.fill("#review-text", "asdf qwerty zxcv")
    page.select_option("#review-model", "lstm")
    page.click("#review-go")
    sync_api.expect(page.locator("#review-results .ood")).to_contain_text("not like the training text?", timeout=10_000)
    page.fill("#review-text", "A moving, beautifully shot film.")
    page.click("#review-go")
    sync_api.expect(page.locator("#review-results h3")).to_contain_text("lstm: POSITIVE", timeout=10_000)
    assert page.locator("#review-results .ood").count() == 1 and page.locator("#review-results .ood").is_hidden()
