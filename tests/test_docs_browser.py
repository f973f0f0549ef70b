"""/docs (Swagger UI) and /redoc (ReDoc) in a real browser with the network cut off: every request to another
origin is aborted, as on a machine without internet, and both pages still render the service's API (their scripts
and style come from the service itself: app/http/api/docs.py), within their Content-Security-Policy."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.browser import NEEDS_CHROMIUM, new_page

pytestmark = [pytest.mark.slow, NEEDS_CHROMIUM]
sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture
def offline(browser, base_url: str) -> Iterator:
    """A page whose requests to any other origin fail (recorded), as they do offline."""
    page = new_page(browser, viewport={"width": 1200, "height": 900})
    outside: list[str] = []

    def only_the_service(route) -> None:
        if route.request.url.startswith((base_url, "data:", "blob:")):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_the_service)
    failed: list[str] = []
    page.on("requestfailed", lambda r: None if r.url in outside else failed.append(r.url))
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    yield page
    violations = page.evaluate("window.violations")
    page.close()
    assert outside == []  # nothing asked of another origin
    assert failed == []  # no asset missing (favicon included)
    assert violations == []  # within the page's Content-Security-Policy


def test_swagger_ui_renders_the_api_offline_and_try_it_out_calls_the_service(offline, base_url: str) -> None:
    offline.goto(base_url + "/docs")
    sync_api.expect(offline.locator(".swagger-ui .info .title")).to_contain_text("DeepServe", timeout=20_000)
    assert offline.locator(".opblock-summary-path", has_text="/predict/digit").count() >= 1
    operation = offline.locator(".opblock-get", has=offline.locator("[data-path='/health/live']"))
    operation.locator(".opblock-summary").click()
    operation.locator("button.try-out__btn").click()
    operation.locator("button.execute").click()
    sync_api.expect(operation.locator(".live-responses-table tbody .response-col_status").first).to_have_text(
        "200", timeout=10_000
    )


def test_redoc_renders_the_api_offline(offline, base_url: str) -> None:
    offline.goto(base_url + "/redoc")
    sync_api.expect(offline.locator("h1").first).to_contain_text("DeepServe", timeout=20_000)
    sync_api.expect(offline.get_by_text("/predict/digit").first).to_be_attached(timeout=10_000)
    assert offline.evaluate("document.querySelectorAll('[data-section-id]').length") > 10
