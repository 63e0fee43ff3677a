"""The chat page's weight and the server's time to render a long chat.

Weight: our own HTML (the page of an empty chat), CSS and JavaScript, raw and gzipped; htmx (shipped by
django-htmx) and the vendored scripts the chat page loads (static/qtap/vendor: the streaming Markdown
renderer and sanitiser) are counted separately, and in the page's total. Target: our own HTML + JS + CSS
under 100 KB.
Time: the page of a chat of 500 messages (Markdown with code blocks, lists and links, as models write
it), through the full Django stack (middleware, session, queries, Markdown + sanitising, template),
median of N runs. Target: under 200 ms. The page shows the newest 100 messages (older ones load a page
at a time); "cold" clears the rendered-Markdown memo before each run, "warm" is a reload, and the time
to render all 500 (the page plus every earlier page, cold) is reported too.
Time to interactive (``--browser``): Debian's Chromium loads the long chat's page, served from the same
Django stack through Playwright's request routing (no network, no socket), and reports the navigation's
``domContentLoadedEventEnd`` (every deferred script, the page script included, has run: the composer
works) and ``loadEventEnd``; cold is a fresh browser context with the Markdown memo cleared, warm a reload
in the same context.

The measurement runs in a fresh interpreter on a throwaway data directory (its own SQLite database).

    python -m bench.page_weight [--runs N] [--messages M] [--browser] [--out FILE]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "page_weight.json"
TARGET_KB = 100.0
TARGET_MS = 200.0

ASSISTANT_TEXT = """Here is how to do it, step by step:

1. Open the **settings** page and pick a *provider*.
2. Paste the key; only its last four characters are kept visible.
3. Press `Test connection` and read the [documentation](https://example.com/docs).

```python
def greet(name: str) -> str:
    return f"Hello, {{name}}!"
```

| option | default |
|--------|---------|
| temperature | 0.7 |

That is all; message {i}."""
USER_TEXT = "How do I set up provider number {i}? Please include an example and keep it short."


def _kb(n: int) -> float:
    return round(n / 1024, 2)


def _older(html: bytes) -> str | None:
    match = re.search(rb"history/\?before=(\d+)", html)
    return match.group(1).decode() if match else None


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ORIGIN = "http://bench.test"


def _page_scripts(html: bytes) -> list[str]:
    """The static paths of the scripts a page loads (``/static/…``)."""
    return [m.decode() for m in re.findall(rb'<script src="/static/([^"]+)"', html)]


def _interactive(client: Any, path: str, runs: int, clear: Any) -> dict[str, Any] | None:
    """Chromium's time to interactive of ``path``, cold and warm (medians over ``runs``), or None."""
    if not Path(CHROMIUM).exists():
        return None
    import mimetypes

    from django.contrib.staticfiles import finders
    from playwright.sync_api import sync_playwright

    def serve(route: Any) -> None:
        url = route.request.url.removeprefix(ORIGIN)
        if url.startswith("/static/"):
            found = finders.find(url.removeprefix("/static/").split("?")[0])
            if found:
                kind = mimetypes.guess_type(str(found))[0] or "application/octet-stream"
                route.fulfill(status=200, body=Path(str(found)).read_bytes(), content_type=kind)
                return
            route.fulfill(status=404, body=b"")
            return
        response = client.get(url)
        route.fulfill(status=response.status_code, body=response.content, content_type=response["Content-Type"])

    timing = """() => { const n = performance.getEntriesByType('navigation')[0];
        return [n.domContentLoadedEventEnd, n.loadEventEnd]; }"""
    cold: list[list[float]] = []
    warm: list[list[float]] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for _ in range(runs):
            context = browser.new_context(viewport={"width": 1100, "height": 900})
            page = context.new_page()
            page.route(ORIGIN + "/**", serve)
            clear()
            page.goto(ORIGIN + path, wait_until="load")
            cold.append(page.evaluate(timing))
            page.reload(wait_until="load")
            warm.append(page.evaluate(timing))
            context.close()
        browser.close()

    def med(rows: list[list[float]], i: int) -> float:
        return round(statistics.median(r[i] for r in rows), 1)

    return {
        "runs": runs,
        "cold_interactive_ms": med(cold, 0),
        "cold_load_ms": med(cold, 1),
        "warm_interactive_ms": med(warm, 0),
        "warm_load_ms": med(warm, 1),
    }


def _child(runs: int, messages: int, browser: bool = False) -> dict[str, Any]:
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    from providers.services import connection_profile_create
    from qtap_site.chat.models import Message
    from qtap_site.chat.services import chat_create

    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_user(username="bench", password="bench-password-long")
    profile = connection_profile_create(
        user=user, name="bench", plugin="qtap-plugin-ollama", model="llama3", base_url="http://127.0.0.1:9"
    )
    empty = chat_create(user=user, profile=profile, title="Empty")
    long_chat = chat_create(user=user, profile=profile, title="Long")
    parent = None
    for i in range(messages):
        role = "user" if i % 2 == 0 else "assistant"
        text = (USER_TEXT if role == "user" else ASSISTANT_TEXT).format(i=i)
        parent = Message.objects.create(
            chat=long_chat,
            parent=parent,
            role=role,
            content=text,
            model="llama3" if role == "assistant" else "",
            input_tokens=120 if role == "assistant" else None,
            output_tokens=180 if role == "assistant" else None,
            ttft_ms=140 if role == "assistant" else None,
        )

    from qtap_site.chat import views

    client = Client()
    client.force_login(user)
    shell = client.get(f"/chats/{empty.pk}/")
    assert shell.status_code == 200
    page = f"/chats/{long_chat.pk}/"
    client.get(page)  # load templates and the Markdown parser once

    def timed(path: str) -> tuple[float, Any]:
        started = time.perf_counter()
        response = client.get(path)
        assert response.status_code == 200, response.status_code
        return (time.perf_counter() - started) * 1000, response

    cold, warm, everything = [], [], []
    for _ in range(runs):
        views._message_html.cache_clear()  # cold: every reply's Markdown parsed and sanitised again
        elapsed, response = timed(page)
        cold.append(elapsed)
        warm.append(timed(page)[0])  # warm: the same page again (a reload)
        # The whole history, cold: the page, then "Show earlier messages" until the first message.
        views._message_html.cache_clear()
        total, html = timed(page)
        cursor = _older(html.content)
        while cursor:
            elapsed, more = timed(f"/chats/{long_chat.pk}/history/?before={cursor}")
            total += elapsed
            cursor = _older(more.content)
        everything.append(total)
    long_html = response.content
    timings = cold

    static = Path(settings.BASE_DIR) / "static" / "qtap"
    css = (static / "qtap.css").read_bytes()
    js = (static / "chat.js").read_bytes()
    import django_htmx

    htmx = (Path(django_htmx.__file__).parent / "static" / "django_htmx" / "htmx-2.min.js").read_bytes()
    own = shell.content + css + js
    vendor = {name: len((static / name.removeprefix("qtap/")).read_bytes()) for name in _page_scripts(shell.content)
              if name.startswith("qtap/vendor/")}  # fmt: skip
    tti = _interactive(client, page, max(3, runs // 3), views._message_html.cache_clear) if browser else None
    return {
        "page_scripts": _page_scripts(shell.content),
        "vendor_bytes": vendor,
        "vendor_gzip_bytes": {
            name: len(gzip.compress((static / name.removeprefix("qtap/")).read_bytes())) for name in vendor
        },
        "page_total_bytes": len(own) + sum(vendor.values()) + len(htmx),
        "long_chat_interactive": tti,
        "long_chat_page_total_bytes": len(long_html) + len(css) + len(js) + sum(vendor.values()) + len(htmx),
        "own_bytes": {"html": len(shell.content), "css": len(css), "js": len(js), "total": len(own)},
        "own_gzip_bytes": {
            "html": len(gzip.compress(shell.content)),
            "css": len(gzip.compress(css)),
            "js": len(gzip.compress(js)),
        },
        "own_total_kb": _kb(len(own)),
        "htmx_bytes": len(htmx),
        "htmx_gzip_bytes": len(gzip.compress(htmx)),
        "long_chat": {
            "messages": messages,
            "html_bytes": len(long_html),
            "html_gzip_bytes": len(gzip.compress(long_html)),
            "runs": runs,
            "shown_on_first_page": long_html.count(b'" id="msg-'),
            "warm_median_ms": round(statistics.median(warm), 1),
            "all_pages_cold_median_ms": round(statistics.median(everything), 1),
            "median_ms": round(statistics.median(timings), 1),
            "p90_ms": round(sorted(timings)[max(0, int(len(timings) * 0.9) - 1)], 1),
            "min_ms": round(min(timings), 1),
            "max_ms": round(max(timings), 1),
        },
    }


def measure(runs: int, messages: int, browser: bool = False) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="qtap-bench-page-") as data_dir:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("QTAP_", "DATABASE_URL", "REDIS_URL"))}
        env.update(
            DJANGO_SETTINGS_MODULE="qtap_site.settings",
            QTAP_DATA_DIR=data_dir,
            QTAP_ALLOWED_HOSTS="testserver,bench.test",
            DJANGO_ALLOW_ASYNC_UNSAFE="true",  # Playwright's sync API keeps an event loop on the thread
        )
        result = subprocess.run(
            [sys.executable, "-m", "bench.page_weight", "--child", "--runs", str(runs), "--messages", str(messages)]
            + (["--browser"] if browser else []),
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"measurement failed:\n{result.stderr[-4000:]}")
        line = next(line for line in result.stdout.splitlines() if line.startswith("QTAP_BENCH "))
        return dict(json.loads(line.removeprefix("QTAP_BENCH ")))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--browser", action="store_true", help="also time to interactive in Chromium")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON goes")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print("QTAP_BENCH " + json.dumps(_child(args.runs, args.messages, args.browser)), flush=True)
        return {}

    figures = measure(args.runs, args.messages, args.browser)
    long_chat = figures["long_chat"]
    result = {
        "benchmark": "page_weight",
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()},
        "targets": {"own_total_kb": TARGET_KB, "render_500_median_ms": TARGET_MS},
        **figures,
        "meets_targets": {
            "weight": figures["own_total_kb"] < TARGET_KB,
            "render_time": long_chat["median_ms"] < TARGET_MS,
        },
    }
    own = figures["own_bytes"]
    print(
        f"chat page, our own assets: HTML {own['html']} B + CSS {own['css']} B + JS {own['js']} B = "
        f"{figures['own_total_kb']} KB (target < {TARGET_KB:.0f} KB); gzipped "
        f"{sum(figures['own_gzip_bytes'].values())} B"
    )
    print(f"htmx (django-htmx, counted separately): {figures['htmx_bytes']} B, gzipped {figures['htmx_gzip_bytes']} B")
    print(
        f"chat page of a {long_chat['messages']}-message chat (newest {long_chat['shown_on_first_page']} shown), "
        f"cold: median {long_chat['median_ms']} ms, p90 {long_chat['p90_ms']} ms over {long_chat['runs']} runs "
        f"(target < {TARGET_MS:.0f} ms); warm reload: median {long_chat['warm_median_ms']} ms; "
        f"page {_kb(long_chat['html_bytes'])} KB, gzipped {_kb(long_chat['html_gzip_bytes'])} KB"
    )
    print(
        f"all {long_chat['messages']} messages (page + every 'Show earlier messages'), cold: "
        f"median {long_chat['all_pages_cold_median_ms']} ms"
    )
    print(
        f"vendored scripts of the chat page: {figures['vendor_bytes']} (gzipped {figures['vendor_gzip_bytes']}); "
        f"the page with everything it loads: {_kb(figures['page_total_bytes'])} KB"
    )
    if figures["long_chat_interactive"]:
        tti = figures["long_chat_interactive"]
        print(
            f"time to interactive of the {long_chat['messages']}-message chat in Chromium: cold "
            f"{tti['cold_interactive_ms']} ms (load {tti['cold_load_ms']} ms), warm {tti['warm_interactive_ms']} ms "
            f"(load {tti['warm_load_ms']} ms), medians of {tti['runs']}"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"saved {out}")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
