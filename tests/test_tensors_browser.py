"""The tensor views in a real Chromium, against the real server holding real captures: a tiny BERT's
attention (grid, zoomed head with token labels, head average, rollout) and a 3-D tensor (summary,
histogram, heatmap with dimension pickers)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from playwright.sync_api import expect

from conftest import ARTIFACTS, RunningServer
from finetune_studio import debug
from finetune_studio.testing.dashboard_driver import open_dashboard

pytestmark = pytest.mark.browser

PLOT_STATE = """(el) => el && el.data ? {
  z: el.data[0].z, title: el.layout.title.text,
  xticks: el.layout.xaxis.ticktext || null, yticks: el.layout.yaxis.ticktext || null,
} : null"""


def capture(server: RunningServer, monkeypatch: pytest.MonkeyPatch, obj: Any, **kwargs: Any) -> str:
    monkeypatch.setenv("FINETUNE_STUDIO_HOME", str(server.data_dir))
    result = json.loads(debug.capture(obj, **kwargs))
    assert result["id"], result
    return str(result["id"])


def plot(page: Any, selector: str) -> dict[str, Any]:
    page.wait_for_function(f"() => document.querySelector({selector!r})?.data")
    return page.eval_on_selector(selector, PLOT_STATE)  # type: ignore[no-any-return]


def test_attention_grid_with_token_labels(server: RunningServer, tiny_bert: Path, page: Any,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(tiny_bert, attn_implementation="eager").eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    batch = tokenizer("the film was really wonderful", return_tensors="pt")
    with torch.no_grad():
        outputs = model(**batch, output_attentions=True)
    tokens = tokenizer.convert_ids_to_tokens(batch["input_ids"][0])
    tensor_id = capture(server, monkeypatch, outputs.attentions, name="outputs.attentions",
                        tokenizer=tokenizer, input_ids=batch["input_ids"])

    open_dashboard(page, server.url, server.token, f"#tensor={tensor_id}")
    expect(page.locator(".att-cell")).to_have_count(2 * 2)  # layers x heads
    grid = page.locator(".att-grid")
    assert (grid.get_attribute("data-layers"), grid.get_attribute("data-heads")) == ("2", "2")
    zoom, average, rollout = (f".att-views > div:nth-child({i})" for i in (1, 2, 3))
    zoomed = plot(page, zoom)
    assert zoomed["xticks"] == tokens and zoomed["yticks"] == tokens
    assert len(zoomed["z"]) == len(tokens) and zoomed["title"] == "layer 0, head 0"
    # the labels are drawn on both axes
    expect(page.locator(f"{zoom} .xtick text").first).to_have_text(tokens[0])
    expect(page.locator(f"{zoom} .ytick text").last).to_have_text(tokens[-1])

    page.click('.att-cell[data-layer="1"][data-head="1"]')
    assert plot(page, zoom)["title"] == "layer 1, head 1"
    assert plot(page, average)["title"] == "layer 1, average of 2 heads"
    expect(page.locator('.att-cell.selected[data-layer="1"][data-head="1"]')).to_have_count(1)
    rolled = plot(page, rollout)
    assert "rollout" in rolled["title"]
    assert all(abs(sum(row) - 1) < 1e-4 for row in rolled["z"])
    expect(page.locator(".tensor-list li.active")).to_contain_text("outputs.attentions")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "tensors-attention.png"), full_page=True)


def test_tensor_summary_histogram_and_dimension_pickers(server: RunningServer, page: Any,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(2, 3, 4) - 5
    x[1, 2, 3] = float("nan")
    tensor_id = capture(server, monkeypatch, x, name="x")
    other = capture(server, monkeypatch, torch.ones(3), name="ones")

    open_dashboard(page, server.url, server.token, f"#tensor={tensor_id}")
    expect(page.locator(".tensor-text")).to_contain_text("tensor[2, 3, 4] float32 cpu")
    expect(page.locator('.tensor-summary tr[data-key="NaN"] td')).to_have_text("1")
    expect(page.locator('.tensor-summary tr[data-key="NaN"] td.bad')).to_have_count(1)
    expect(page.locator('.tensor-summary tr[data-key="min"] td')).to_have_text("-5")
    hist = page.locator(".tensor-chart")
    page.wait_for_function("() => document.querySelector('.tensor-chart')?.data")
    assert sum(hist.evaluate("(el) => Array.from(el.data[0].y)")) == 23

    heat = plot(page, ".tensor-heatmap")
    assert heat["z"] == [[-5, -4, -3, -2], [-1, 0, 1, 2], [3, 4, 5, 6]]  # x[0]
    page.fill('.index-pickers input[data-dim="0"]', "1")
    page.wait_for_function("() => document.querySelector('.tensor-heatmap').data[0].z[2][3] === null")
    page.select_option(".toolbar label:nth-child(1) select", "0")  # rows: dim 0, columns: dim 2
    page.wait_for_function("() => document.querySelector('.tensor-heatmap').data[0].z.length === 2")
    heat = plot(page, ".tensor-heatmap")
    assert heat["z"] == [[-5, -4, -3, -2], [7, 8, 9, 10]]  # x[:, 0, :]

    page.click(f'.tensor-list li[data-tensor="{other}"] a')
    expect(page.locator(".tensor-text")).to_contain_text("tensor[3]")
    open_dashboard(page, server.url, server.token, "#tensors")
    expect(page.locator(".tensor-list li")).to_have_count(2)
