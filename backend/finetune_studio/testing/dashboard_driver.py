"""Driving the dashboard in Debian's Chromium through Playwright, for the browser tests and benchmarks.

Chromium is the system one (`apt-get install chromium`); Playwright's own browser downloads are never
used. Metric charts are read back through charts.js `chartState` (what the uPlot draws) and the
`data-points`/`data-last-step` attributes that it sets after each draw.
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


_CHART_STATE = """async (id) => {
  const el = document.getElementById(id);
  const state = el && (await import("/static/charts.js")).chartState(el);
  if (!state) return null;
  return {
    ...state,
    points: Number(el.dataset.points || 0),
    lastStep: el.dataset.lastStep === "" ? null : Number(el.dataset.lastStep),
    traces: state.traces.map((t) => ({...t, x: Array.from(t.x), y: Array.from(t.y), steps: Array.from(t.steps)})),
  };
}"""

_POINT_POSITION = """async ([id, step, trace]) => {
  const el = document.getElementById(id);
  return el && (await import("/static/charts.js")).pointPosition(el, step, trace);
}"""


def chart(page: Any, series: str) -> dict[str, Any] | None:
    """What the chart of `series` draws now (None before its first draw): title, yType, points, lastStep and
    traces (raw, smoothed when on, anomaly when there are markers), each with x, y, steps and opacity."""
    return page.evaluate(_CHART_STATE, chart_id(series))  # type: ignore[no-any-return]


def point_position(page: Any, series: str, step: int, trace: str = "raw") -> tuple[float, float]:
    """Where the point of `step` (of the raw line, or the anomaly marker) of a metric chart is, in page pixels."""
    at = page.evaluate(_POINT_POSITION, [chart_id(series), step, trace])
    assert at is not None, f"step {step} is not drawn in the {trace} trace of {series}"
    return float(at[0]), float(at[1])


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
