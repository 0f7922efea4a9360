"""How the monitor page holds up while a load runs: open it in headless Chromium and sample it.

    .venv/bin/python -m sagashop.bench.monitor_page --url http://127.0.0.1:3000/ [--seconds 60]

Run a load against the same server meanwhile (`python run.py bench --url …`). Every second it
reads, inside the page: the steps drawn per second, the steps the server sampled out, the DOM
node count, the JS heap, and the longest gap between two animation frames (a page that cannot
keep up shows long gaps). It prints a line per second and a summary at the end. Needs Playwright
(the test extra) and Chromium (Debian's `chromium`, or CHROMIUM=/path/to/chrome).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
from typing import Any

from playwright.async_api import async_playwright

PROBE = """() => {
  const frames = window.__frames || [];
  window.__frames = [];
  const gaps = frames.slice(1).map((t, i) => t - frames[i]);
  return {
    seen: state.seen, missed: state.missed, kept: state.steps.length,
    nodes: document.getElementsByTagName("*").length,
    heapMb: performance.memory ? performance.memory.usedJSHeapSize / 1e6 : null,
    longestFrameGapMs: gaps.length ? Math.max(...gaps) : null,
  };
}"""
RECORD_FRAMES = """() => {
  window.__frames = [];
  const tick = (t) => { window.__frames.push(t); requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
}"""


async def sample(url: str, seconds: int) -> list[dict[str, Any]]:
    executable = os.environ.get("CHROMIUM") or shutil.which("chromium")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable)
        page = await browser.new_page(viewport={"width": 1280, "height": 1000})
        await page.goto(url)
        await page.wait_for_selector("#connection[data-state='live']")
        await page.evaluate(RECORD_FRAMES)
        samples, seen_before = [], 0
        for second in range(seconds):
            await asyncio.sleep(1)
            found = await page.evaluate(PROBE)
            found["stepsPerSecond"], seen_before = found["seen"] - seen_before, found["seen"]
            print(second + 1, found, flush=True)
            samples.append(found)
        await browser.close()
    return samples


def summarize(samples: list[dict[str, Any]]) -> None:
    busy = [s for s in samples if s["stepsPerSecond"] > 0] or samples
    gaps = [s["longestFrameGapMs"] for s in busy if s["longestFrameGapMs"] is not None]
    print(
        f"steps drawn/s: median {statistics.median(s['stepsPerSecond'] for s in busy):.0f}; "
        f"sampled out in all: {samples[-1]['missed']}; "
        f"steps kept at most: {max(s['kept'] for s in samples)}; "
        f"DOM nodes: {samples[0]['nodes']} -> {samples[-1]['nodes']} "
        f"(max {max(s['nodes'] for s in samples)}); "
        f"JS heap MB: {samples[0]['heapMb']:.1f} -> {samples[-1]['heapMb']:.1f}; "
        f"longest frame gap under load: median {statistics.median(gaps):.0f} ms, "
        f"max {max(gaps):.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--seconds", type=int, default=60)
    args = parser.parse_args()
    summarize(asyncio.run(sample(args.url, args.seconds)))


if __name__ == "__main__":
    main()
