"""A real browser for the page tests: Debian's headless chromium (apt-get install chromium; .ci/run installs it)
driven by Playwright (its own browser download cannot run here), with every Content-Security-Policy violation a
page reports recorded in `window.violations` for the tests to read."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
NEEDS_CHROMIUM = pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium (apt-get install chromium)")
RECORD_VIOLATIONS = """window.violations = [];
document.addEventListener('securitypolicyviolation',
                          (e) => window.violations.push(`${e.violatedDirective} ${e.blockedURI}`));
"""


@contextmanager
def chromium() -> Iterator:
    from playwright import sync_api

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield browser
        browser.close()


def new_page(browser, **options):
    """A page that records the policy violations it meets."""
    page = browser.new_page(**options)
    page.add_init_script(RECORD_VIOLATIONS)
    return page
