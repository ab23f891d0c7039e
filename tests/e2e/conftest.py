"""End-to-end fixtures: the whole local stack on free ports, the storefront built for
it, a sample release, and real Chromium driven by Playwright.

The stack is started once per session through `emulators.stack.LocalStack` (the code
behind `make dev`) in "test" mode and stopped by PID at the end, also after failures.
The storefront is built from the stack's own environment into a temporary folder and
served by its own `http.server`, so a developer's `make dev` and build/site are never
touched. Every test here is marked `e2e`.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from emulators import stack as local_stack
from emulators.storefront_site import build as build_site
from emulators.storefront_site import settings_from

REPO_ROOT = Path(__file__).resolve().parents[2]
AXE = REPO_ROOT / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = REPO_ROOT / "test-output" / "screenshots"
# `make test CHROMIUM=/path/to/chromium` (or the variable in the environment) uses another build.
CHROMIUM = os.environ.get("CHROMIUM") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
RELEASE_VERSION = "1.0.0"
RELEASE_FILE = f"genx-{RELEASE_VERSION}-linux-x86_64.tar.gz"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[CALL_FAILED] = report.failed
    return report


CALL_FAILED = pytest.StashKey[bool]()


def wait_for(
    what: str, check: Callable[[], Any], *, timeout: float = 60.0, every: float = 0.25
) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


@dataclass
class Mailbox:
    """maildev's REST API (`GET /email`, `DELETE /email/all`)."""

    url: str

    def all(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(self.url + "/email", timeout=5) as response:
            messages: list[dict[str, Any]] = json.loads(response.read())
        return messages

    def to(self, address: str) -> list[dict[str, Any]]:
        return [
            message
            for message in self.all()
            if any(item.get("address", "").lower() == address.lower() for item in message["to"])
        ]

    def wait_for(self, address: str, count: int = 1, timeout: float = 90.0) -> list[dict]:
        return wait_for(
            f"{count} e-mail(s) to {address}",
            lambda: (found := self.to(address)) and len(found) >= count and found,
            timeout=timeout,
        )


def download_links(message: dict[str, Any]) -> list[str]:
    text = (message.get("text") or "") + (message.get("html") or "")
    return sorted(set(re.findall(r"https?://[^\s\"'<>]+/d/[A-Za-z0-9_-]{43}", text)))


@dataclass
class E2EStack:
    stack: local_stack.LocalStack
    storefront: str  # base URL, ends without "/"
    mailbox: Mailbox
    manifest: dict[str, Any]
    env: dict[str, str]

    def page_url(self, page: str = "index.html", locale: str = "en") -> str:
        prefix = "" if locale == "en" else f"/{locale}"
        return f"{self.storefront}{prefix}/{page}"


def _publish_sample_release(env: dict[str, str], workdir: Path) -> dict[str, Any]:
    """Publish one release through the delivery publisher (unless a set-up step did),
    and return its manifest as stored in the bucket."""
    from commerce.bootstrap import Container
    from commerce.domain.releases import manifest_object_name
    from commerce.secrets import EnvSecrets

    container = Container(settings_from(env), secrets=EnvSecrets(env))
    if not container.artifacts.exists(manifest_object_name(RELEASE_VERSION)):
        artifact = workdir / RELEASE_FILE
        artifact.write_bytes(os.urandom(256 * 1024))
        container.publisher.publish([artifact], RELEASE_VERSION, "stable")
    manifest: dict[str, Any] = json.loads(
        container.artifacts.download_bytes(manifest_object_name(RELEASE_VERSION))
    )
    return manifest


@pytest.fixture(scope="session")
def e2e_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2EStack]:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"Chromium is missing at {CHROMIUM}: run `make chromium` (apt-get install chromium) "
            "or set CHROMIUM=/path/to/chromium"
        )
    workdir = tmp_path_factory.mktemp("e2e")
    ports = local_stack.free_ports()
    stack = local_stack.LocalStack(ports, local_dir=workdir / "local", mode="test")
    stack.start(storefront=False)
    storefront_service = None
    saved = {
        name: os.environ.get(name) for name in ("FIRESTORE_EMULATOR_HOST", "STORAGE_EMULATOR_HOST")
    }
    try:
        env = dict(stack.env)
        for name in saved:
            os.environ[name] = env[name]
        manifest = _publish_sample_release(env, workdir)
        site = workdir / "site"
        build_site(env, site, root=REPO_ROOT)
        spec = local_stack.storefront_spec(ports.storefront, site, REPO_ROOT)
        storefront_service = local_stack.start_service(spec, stack.log_dir)
        local_stack.wait_ready([storefront_service])
        yield E2EStack(
            stack=stack,
            storefront=f"http://{local_stack.HOST}:{ports.storefront}",
            mailbox=Mailbox(env["MAILDEV_URL"]),
            manifest=manifest,
            env=env,
        )
    finally:
        if storefront_service is not None:
            local_stack.stop_service(storefront_service)
        stack.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="session")
def browser(e2e_stack: E2EStack) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        chromium.close()


class PageWatch:
    """Console errors and uncaught exceptions of every page a context opens."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def attach(self, page: Any) -> None:
        page.on(
            "console",
            lambda message: (
                self.errors.append(f"{page.url}: {message.text}")
                if message.type == "error"
                else None
            ),
        )
        page.on("pageerror", lambda error: self.errors.append(f"{page.url}: {error}"))


@dataclass
class Session:
    context: Any
    page: Any
    watch: PageWatch


def _session(browser: Any, node: pytest.Item, **options: Any) -> Iterator[Session]:
    context = browser.new_context(
        accept_downloads=True, viewport={"width": 1100, "height": 900}, **options
    )
    context.set_default_timeout(30_000)
    # Chromium asks every origin for /favicon.ico by itself; the Stripe double's and the
    # download function's pages have none, and that 404 is not a page's error. (The
    # storefront declares its icon inline and never asks.)
    context.route("**/favicon.ico", lambda route: route.fulfill(status=204, body=""))
    watch = PageWatch()
    page = context.new_page()
    watch.attach(page)
    yield Session(context, page, watch)
    if node.stash.get(CALL_FAILED, False):
        screenshot(page, "failed-" + re.sub(r"[^A-Za-z0-9_-]+", "-", node.name))
    context.close()
    assert watch.errors == [], "JavaScript console errors:\n" + "\n".join(watch.errors)


@pytest.fixture
def session(browser: Any, request: pytest.FixtureRequest) -> Iterator[Session]:
    yield from _session(browser, request.node)


@pytest.fixture
def another_session(browser: Any, request: pytest.FixtureRequest) -> Iterator[Session]:
    """A second buyer: its own browser context (cookies, storage), same network."""
    yield from _session(browser, request.node)


@pytest.fixture
def session_without_js(browser: Any, request: pytest.FixtureRequest) -> Iterator[Session]:
    yield from _session(browser, request.node, java_script_enabled=False)


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def serious_axe_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the current page."""
    page.add_script_tag(path=str(AXE))
    violations: list[dict[str, Any]] = page.evaluate(
        """async () => {
            const result = await axe.run(document, {resultTypes: ["violations"]});
            return result.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help,
                targets: v.nodes.map(n => n.target.join(" ")).slice(0, 5),
            }));
        }"""
    )
    return [v for v in violations if v["impact"] in ("serious", "critical")]
