"""``/docs`` (Swagger UI) renders offline, from files the package ships.

Headless Chromium may reach only the test server on 127.0.0.1; every other
request is blocked and recorded. The page must show the served model's own
fields (a wine model here, not iris). ``/redoc`` is off: ReDoc's bundle loads
its logo from the internet.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from serving_helpers import IrisRegistry, LiveServer, serve

WINE_FIELDS = ("alcohol", "malic_acid", "magnesium", "proline", "hue_band")


@pytest.fixture(scope="module")
def wine_live(shared_iris: IrisRegistry) -> Iterator[LiveServer]:
    server = serve(shared_iris.client, "wine")
    yield server
    server.stop()


def test_the_docs_page_references_no_other_host(wine_live: LiveServer) -> None:
    html = httpx.get(wine_live.url + "/docs", timeout=10).text
    assert "cdn" not in html.lower() and "https://" not in html, html
    assert "/docs-assets/swagger-ui-bundle.js" in html
    assert httpx.get(wine_live.url + "/redoc", timeout=10).status_code == 404


def test_swagger_ui_renders_the_models_fields_offline(wine_live: LiveServer, offline_page) -> None:
    page = offline_page.page
    page.goto(wine_live.url + "/docs")
    page.wait_for_selector("#operations-predict-predict_predict_post", timeout=30_000)
    page.click("#operations-predict-predict_predict_post .opblock-summary")
    page.wait_for_selector(".opblock-body .body-param__example, .opblock-body .microlight")
    text = page.inner_text(".opblock-body")
    for field in WINE_FIELDS:
        assert field in text, field
    assert "sepal" not in text
    assert offline_page.blocked == []
    assert offline_page.errors == []
