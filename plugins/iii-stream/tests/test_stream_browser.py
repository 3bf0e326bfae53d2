"""End to end in headless Chromium: the example live-list page shows a worker's stream::set.

Chromium is Debian's ``chromium`` (``/usr/bin/chromium``), driven by ``playwright-core`` from
npm (installed once into the SDK cache).  The example worker runs on the published Python SDK.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import textwrap

import pytest

from iii_core.testing import (
    SDK_CACHE,
    _lock,
    free_port,
    published_python_sdk,
    raw_worker,
    subprocess_worker,
    wait_until,
)

INSTALL_HINT = (
    "install it with 'apt-get install -y chromium' (or set III_CHROMIUM to a Chromium binary)"
)
EXAMPLE = os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "..", "..", "examples", "stream-live-list")
)

DRIVER = textwrap.dedent(
    """
    const { chromium } = require('playwright-core')
    const readline = require('readline')
    ;(async () => {
      const browser = await chromium.launch({
        executablePath: process.env.CHROMIUM,
        // --disable-dev-shm-usage: CI containers often have a 64 MB /dev/shm that crashes tabs
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
               '--disable-background-networking', '--disable-component-update', '--disable-sync',
               '--no-first-run'],
      })
      try {
        const page = await browser.newPage()
        page.on('console', (m) => console.error('[page]', m.text()))
        await page.goto(process.env.PAGE_URL)
        await page.waitForSelector('#status[data-synced="yes"]', { timeout: 30000 })
        console.log('READY')
        await page.waitForFunction(
          () => [...document.querySelectorAll('#items li')]
            .some((li) => li.textContent === 'hello from a worker'),
          null, { timeout: 30000 })
        const items = await page.$$eval('#items li', (lis) => lis.map((li) => li.textContent))
        console.log('ITEMS ' + JSON.stringify(items))
      } finally {
        await browser.close()
      }
    })().catch((e) => { console.error(e); process.exit(1) })
    """
)


def chromium() -> str:
    """The Chromium binary: ``$III_CHROMIUM``, else Debian's ``chromium`` (or Ubuntu's
    ``chromium-browser``) on PATH.  Fails, never skips: CI must not pass without the browser."""
    wanted = os.environ.get("III_CHROMIUM")
    if wanted:
        found = shutil.which(wanted)
        if found is None:
            pytest.fail(f"III_CHROMIUM={wanted} is not an executable; {INSTALL_HINT}")
        return found
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found is not None:
            return found
    pytest.fail(f"chromium is not installed (not on PATH); {INSTALL_HINT}")


def playwright_dir() -> str:
    """``playwright-core`` from npm, installed once into ``$III_SDK_CACHE/playwright-core`` (no
    browser download: Debian's chromium is used through ``executablePath``)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("node/npm are not installed; install Node.js 20: apt-get install -y nodejs npm")
    root = os.path.join(SDK_CACHE, "playwright-core")
    marker = os.path.join(root, ".ready")
    package = os.path.join(root, "node_modules", "playwright-core", "package.json")
    if not (os.path.exists(marker) and os.path.exists(package)):
        with _lock(root + ".lock"):
            if not (os.path.exists(marker) and os.path.exists(package)):
                shutil.rmtree(root, ignore_errors=True)
                os.makedirs(root)
                with open(os.path.join(root, "package.json"), "w") as f:
                    json.dump({"name": "iii-test-browser", "private": True}, f)
                proc = subprocess.run(
                    ["npm", "install", "--no-audit", "--no-fund", "--silent", "playwright-core@1"],
                    cwd=root,
                    capture_output=True,
                    text=True,
                    # playwright-core never downloads browsers, but be explicit for CI.
                    env={**os.environ, "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1"},
                    timeout=600,
                )
                if proc.returncode != 0:
                    pytest.fail(
                        f"npm install playwright-core into {root} failed "
                        f"(is the npm registry reachable?): {proc.stderr[-2000:]}"
                    )
                open(marker, "w").close()
    return root


async def test_example_page_shows_a_worker_set(stream_engine, tmp_path):
    browser = chromium()
    node_root = playwright_dir()
    python = published_python_sdk("0.25.0")
    driver = tmp_path / "driver.cjs"
    driver.write_text(DRIVER)
    http_port = free_port()
    async with stream_engine() as (engine, module), raw_worker(engine) as w:
        stream_url = f"ws://127.0.0.1:{module.port}/"
        args = [
            python,
            os.path.join(EXAMPLE, "worker.py"),
            "--engine",
            f"ws://127.0.0.1:{engine.port}",
            "--stream-url",
            stream_url,
            "--http-port",
            str(http_port),
            "--group",
            "e2e",
        ]
        with subprocess_worker(args):
            await wait_until(
                lambda: engine.functions.get("live_list::add") is not None,
                timeout=60,
                what="the example worker",
            )
            page = f"http://127.0.0.1:{http_port}/index.html?stream={stream_url}&name=live-list&group=e2e"
            node = await asyncio.create_subprocess_exec(
                "node",
                str(driver),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env={
                    **os.environ,
                    "NODE_PATH": os.path.join(node_root, "node_modules"),
                    "CHROMIUM": browser,
                    "PAGE_URL": page,
                },
            )
            assert node.stdout is not None and node.stderr is not None
            errors: list[str] = []  # the driver's stderr (launch errors, page console)

            async def drain(stream: asyncio.StreamReader) -> None:
                async for raw in stream:
                    errors.append(raw.decode(errors="replace").rstrip())

            drainer = asyncio.create_task(drain(node.stderr))

            def why() -> str:
                return f"browser driver stderr ({browser}):\n" + "\n".join(errors[-40:])

            try:
                line = await asyncio.wait_for(node.stdout.readline(), 60)
                assert line.strip() == b"READY", (line, why())
                item = await w.call("live_list::add", {"text": "hello from a worker"})
                assert item["text"] == "hello from a worker"
                line = await asyncio.wait_for(node.stdout.readline(), 60)
                assert line.startswith(b"ITEMS "), (line, why())
                assert json.loads(line[6:]) == ["hello from a worker"]
                assert await asyncio.wait_for(node.wait(), 30) == 0, why()
            finally:
                if node.returncode is None:
                    node.kill()
                    await node.wait()
                await drainer
