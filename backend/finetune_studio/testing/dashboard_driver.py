"""Driving the dashboard in Debian's Chromium through Playwright, for the browser tests and benchmarks.

Chromium is the system one (`apt-get install chromium`); Playwright's own browser downloads are never
used. Charts are read back through Plotly's own state on the chart element (`el.data`, `el.layout`)
and the `data-points`/`data-last-step` attributes that charts.js sets after each draw.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finetune_studio.client import StudioClient

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def launch(playwright: Any, extra_args: list[str] | None = None) -> Any:
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS + (extra_args or []))


@dataclass
class Console:
    """Console errors and uncaught exceptions of a page; expected ones are allowed by pattern."""

    errors: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def attach(self, page: Any) -> None:
        page.on("console", lambda m: self.errors.append(f"console: {m.text} at {m.location.get('url', '')}")
                if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))

    def allow(self, pattern: str) -> None:
        """A request this test means to fail (a 401 before sign-in, a 422 of a bad form) logs an error."""
        self.allowed.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(p.search(e) for p in self.allowed)]


def chart_id(series: str) -> str:
    """Mirrors chartId() of dashboard/chartpanel.js."""
    return "chart-" + re.sub(r"[^A-Za-z0-9_-]+", "-", series)


_CHART_STATE = """(id) => {
  const el = document.getElementById(id);
  if (!el || !el.data) return null;
  const arr = (a) => (a ? Array.from(a, (v) => (v instanceof Date ? v.getTime() : v)) : []);
  return {
    points: Number(el.dataset.points || 0),
    lastStep: el.dataset.lastStep === "" ? null : Number(el.dataset.lastStep),
    yType: el.layout.yaxis.type,
    traces: el.data.map((t) => ({
      name: t.name, x: arr(t.x), y: arr(t.y), steps: arr(t.customdata), opacity: t.opacity})),
  };
}"""


def chart(page: Any, series: str) -> dict[str, Any] | None:
    """What the chart of `series` draws now (None before its first draw)."""
    return page.evaluate(_CHART_STATE, chart_id(series))  # type: ignore[no-any-return]


def kept_steps(page: Any, series: str) -> list[int]:
    """The steps of `series` that the open job's page holds (what the chart draws from)."""
    return page.evaluate(  # type: ignore[no-any-return]
        "(name) => Array.from(window.fts.jobPage.feed?.series.get(name)?.data.step ?? [])", series)


def open_dashboard(page: Any, url: str, token: str, hash_: str = "", theme: str | None = None) -> None:
    """Open the dashboard the way `serve` prints it: `/?token=…` (cookie, redirect), then the hash."""
    query = f"?token={token}" + (f"&theme={theme}" if theme else "")
    page.goto(f"{url}/{query}{hash_}")
    page.wait_for_selector("#job-list-loading", state="hidden")


def open_attached_run(client: StudioClient, name: str, losses: list[float],
                      training_args: dict[str, Any] | None = None, start: float | None = None) -> str:
    """An attached run (what a user's script with StudioCallback creates) with a train loss per step."""
    job = client.request("POST", "/api/runs", json={"name": name, "training_args": training_args or {}})
    t0 = start if start is not None else time.time() - len(losses)
    events = [{"seq": i + 1, "type": "metric", "time": t0 + i, "data": {"step": i + 1, "values": {"train/loss": v}}}
              for i, v in enumerate(losses)]
    for at in range(0, len(events), 5000):
        client.request("POST", f"/api/jobs/{job['id']}/events", json={"attempt": 1, "events": events[at:at + 5000]})
    return str(job["id"])


def wait_until(predicate: Any, timeout: float, interval: float = 0.1, what: str = "condition") -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what} not reached in {timeout}s")
