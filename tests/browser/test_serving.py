"""How the gateway serves the front ends, without a browser: paths, headers, QR codes, words."""

from __future__ import annotations

import asyncio
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from gateway.web import PAGE_POLICY, STATIC, install_front_ends


class Client:
    """The front ends' routes alone, asked from a thread of its own: the browser tests'
    Playwright holds this thread's event loop, so no test here may run one in it."""

    def __init__(self) -> None:
        self.app = FastAPI()
        install_front_ends(self.app)

    def get(self, url: str, **options: Any) -> httpx.Response:
        async def ask() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                return await client.get(url, **options)

        with ThreadPoolExecutor(1) as thread:
            return thread.submit(asyncio.run, ask()).result()


client = Client()


def test_the_root_opens_the_console_and_both_sites_are_served() -> None:
    root = client.get("/")
    assert root.status_code == 307
    assert root.headers["location"] == "/console/"
    for page in ("/console/", "/m/"):
        response = client.get(page)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert 'type="module"' in response.text
    script = client.get("/web/api.js")
    assert script.headers["content-type"].startswith("text/javascript")


def test_a_not_modified_answer_keeps_the_pages_policy() -> None:
    # A browser replaces a cached page's headers with its 304's: the policy must be on both.
    first = client.get("/m/")
    again = client.get("/m/", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    for response in (first, again):
        assert response.headers["content-security-policy"] == PAGE_POLICY
        assert response.headers["cache-control"] == "no-cache"


def test_a_payment_link_is_drawn_as_a_qr_code() -> None:
    response = client.get("/web/qr.svg", params={"text": "weixin://wxpay/bizpayurl?pr=x"})
    too_long = client.get("/web/qr.svg", params={"text": "x" * 2000})
    empty = client.get("/web/qr.svg", params={"text": ""})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("image/svg+xml")
    assert response.text.lstrip().startswith("<svg")
    assert too_long.status_code == 422
    assert empty.status_code == 422


def dictionary(language: str) -> set[str]:
    text = (STATIC / "common" / "i18n" / f"{language}.js").read_text()
    return set(re.findall(r'^\s*"([^"]+)":', text, re.MULTILINE))


def test_every_word_on_screen_is_in_both_languages() -> None:
    sources = [p for p in Path(STATIC).rglob("*.js") if "i18n" not in p.parts]
    used = {key for p in sources for key in re.findall(r'\bt\("([\w.]+)"', p.read_text())}
    chinese, english = dictionary("zh-CN"), dictionary("en")
    assert chinese == english, sorted(chinese ^ english)
    assert used <= chinese, sorted(used - chinese)


def test_no_page_loads_anything_from_elsewhere() -> None:
    # An office PC may have no internet: every file the pages load is served here.
    for path in Path(STATIC).rglob("*.*"):
        text = path.read_text()
        assert not re.search(r"""(src|href)=["']https?://""", text), path
        assert not re.search(r"""import[^;]*["']https?://""", text), path
        assert "@import url(http" not in text, path
