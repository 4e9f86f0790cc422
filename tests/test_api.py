"""The server's guard rails and answers, against the real server (uvicorn) on a free port."""

from __future__ import annotations

import base64
import json
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from conftest import RunningServer, start_server
from finetune_studio.client import ApiError, parse_sse


def test_server_json_is_private_and_points_at_a_live_server(server: RunningServer) -> None:
    path = server.data_dir / "server.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert httpx.get(f"{server.url}/api/health", trust_env=False).json()["status"] == "ok"


def test_api_needs_the_token(server: RunningServer) -> None:
    assert httpx.get(f"{server.url}/api/jobs", trust_env=False).status_code == 401
    wrong = httpx.get(f"{server.url}/api/jobs", headers={"Authorization": "Bearer nope"}, trust_env=False)
    assert wrong.status_code == 401
    assert server.client.request("GET", "/api/jobs") == {"jobs": []}


def test_foreign_host_header_is_refused(server: RunningServer) -> None:
    """DNS rebinding: evil.example resolving to 127.0.0.1 still sends its own Host."""
    response = httpx.get(f"{server.url}/api/health", headers={"Host": "evil.example"}, trust_env=False)
    assert response.status_code == 403
    assert "not allowed" in response.json()["detail"]


def test_dashboard_token_link_sets_a_cookie_that_opens_the_api(server: RunningServer) -> None:
    with httpx.Client(base_url=server.url, trust_env=False) as browser:
        response = browser.get(f"/?token={server.token}&theme=dark")
        assert response.status_code == 303 and response.headers["location"] == "/?theme=dark"
        assert "httponly" in response.headers["set-cookie"].lower()
        assert browser.get("/api/jobs").status_code == 200
        assert browser.get("/").status_code == 200


def test_bad_spec_gets_422_naming_the_field(server: RunningServer, tiny_spec: dict[str, Any]) -> None:
    tiny_spec["training"]["lerning_rate"] = 0.1
    with pytest.raises(ApiError) as caught:
        server.client.submit(tiny_spec)
    assert caught.value.status == 422
    detail = caught.value.body["detail"][0]
    assert detail["field"] == "training.lerning_rate" and "learning_rate" in detail["msg"]


def test_missing_data_file_is_refused_at_submit(server: RunningServer, tiny_spec: dict[str, Any],
                                                tmp_path: Path) -> None:
    tiny_spec["data"]["train"] = str(tmp_path / "nope.csv")
    with pytest.raises(ApiError) as caught:
        server.client.submit(tiny_spec)
    assert caught.value.status == 422 and caught.value.body["detail"][0]["field"] == "data.train"
    assert server.client.jobs() == []  # nothing queued


def test_more_gpus_than_the_machine_has_are_refused(server: RunningServer, tiny_spec: dict[str, Any]) -> None:
    tiny_spec["resources"] = {"gpus": 4}
    with pytest.raises(ApiError, match="resources.gpus"):
        server.client.submit(tiny_spec)


def test_schema_and_system(server: RunningServer) -> None:
    schema = server.client.request("GET", "/api/schema/job-spec")
    assert "training" in schema["properties"]
    system = server.client.request("GET", "/api/system")
    assert system["devices"][0]["kind"] in ("cpu", "cuda") and "torch" in system["versions"]


def test_unknown_job_is_404(server: RunningServer) -> None:
    with pytest.raises(ApiError) as caught:
        server.client.job("nope")
    assert caught.value.status == 404 and caught.value.body["type"] == "not_found"


def test_half_written_server_json_reads_as_no_server(tmp_path: Path) -> None:
    """Regression: `run` and `demo` crashed with a ValidationError when they found server.json created
    but still empty (the server now writes it beside and renames it; readers treat junk as absent)."""
    from finetune_studio.client import read_server_info

    (tmp_path / "server.json").write_text("", encoding="utf-8")
    assert read_server_info(tmp_path) is None


def test_server_json_is_written_whole(server: RunningServer) -> None:
    assert not (server.data_dir / "server.json.tmp").exists()
    assert {"url", "token", "pid", "version"} <= set(__import__("json").loads(
        (server.data_dir / "server.json").read_text()))


# -- hostile and careless input (issue 11): a 4xx naming the field, never a 500, nothing stored -------------
BIG = 2**70
EVENT = {"seq": 1, "type": "metric", "time": 1.0, "data": {"step": 1, "values": {"train/loss": 0.5}}}


def _event(**changes: Any) -> dict[str, Any]:
    return {**EVENT, **changes}


HOSTILE_EVENTS = {
    "seq beyond 64 bits": {"attempt": 1, "events": [_event(seq=BIG)]},
    "attempt beyond 64 bits": {"attempt": BIG, "events": [EVENT]},
    "metric step beyond 64 bits": {"attempt": 1, "events": [_event(data={"step": BIG, "values": {}})]},
    "metric step 'x'": {"attempt": 1, "events": [_event(data={"step": "x", "values": {}})]},
    "values as a list": {"attempt": 1, "events": [_event(data={"step": 1, "values": [1, 2]})]},
    "value a string": {"attempt": 1, "events": [_event(data={"step": 1, "values": {"loss": "low"}})]},
    "progress step 'abc'": {"attempt": 1, "events": [_event(type="progress", data={"step": "abc"})]},
    "end in an unknown state": {"attempt": 1, "events": [_event(type="end", data={"state": "exploded"})]},
    "log on a third stream": {"attempt": 1, "events": [_event(type="log", data={"stream": "x", "text": "hi"})]},
    "lone surrogate in a name": {"attempt": 1, "events": [_event(data={"step": 1, "values": {"\ud800": 1.0}})]},
    "eval details with a lone surrogate": {"attempt": 1, "events": [_event(
        type="eval", data={"step": 1, "values": {}, "labels": ["ok", "\udfff"]})]},
    "too many values": {"attempt": 1, "events": [_event(data={"step": 1, "values": {
        f"v{i}": 1.0 for i in range(1001)}})]},
    "too many events": {"attempt": 1, "events": [_event(seq=i + 1) for i in range(10_001)]},
}


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("api") / ".finetune-studio")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def run_id(shared: RunningServer) -> str:
    return str(shared.client.request("POST", "/api/runs", json={"name": "hostile"})["id"])


@pytest.mark.parametrize("case", sorted(HOSTILE_EVENTS))
def test_reporter_batch_that_does_not_fit_is_422(shared: RunningServer, run_id: str, case: str) -> None:
    """Regression: each of these was stored (then a listing answered 500 from then on) or answered 500."""
    body = json.dumps(HOSTILE_EVENTS[case]).encode()  # json.dumps keeps lone surrogates as \\ud800
    response = shared.client.http.post(f"/api/jobs/{run_id}/events", content=body,
                                       headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert shared.client.request("GET", f"/api/jobs/{run_id}/logs") == {"lines": []}
    assert shared.client.request("GET", "/api/jobs")["jobs"][0]["id"] == run_id


@pytest.mark.parametrize(("case", "body"), [
    ("pid beyond 64 bits", {"pid": BIG}),
    ("negative pid", {"pid": -1}),
    ("name of a megabyte's sixth", {"name": "n" * 200_000}),
    ("empty name", {"name": ""}),
    ("lone surrogate", {"name": "\ud800"}),
    ("training arg NaN", {"training_args": {"learning_rate": float("nan")}}),
    ("training arg a list", {"training_args": {"report_to": ["none"]}}),
])
def test_bad_run_is_422(shared: RunningServer, case: str, body: dict[str, Any]) -> None:
    response = shared.client.http.post("/api/runs", content=json.dumps(body).encode(),
                                       headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text


def test_huge_job_name_is_refused_before_it_is_stored(shared: RunningServer, tiny_spec: dict[str, Any]) -> None:
    """Regression: a 100 MB job name was stored; GET /api/jobs then returned 210 MB."""
    too_long = shared.client.http.post("/api/jobs", json=dict(tiny_spec, name="n" * 300))
    assert too_long.status_code == 422 and too_long.json()["detail"][0]["field"] == "name"
    huge = shared.client.http.post("/api/jobs", json=dict(tiny_spec, name="n" * (2 << 20)))
    assert huge.status_code == 413


@pytest.mark.parametrize("query", [f"after={BIG}", "after=-1", "limit=0", f"limit={BIG}"])
def test_out_of_range_queries_are_422(shared: RunningServer, run_id: str, query: str) -> None:
    assert shared.client.http.get(f"/api/jobs/{run_id}/logs?{query}").status_code == 422
    if query.startswith("after"):
        assert shared.client.http.get(f"/api/jobs/{run_id}/stream?{query}").status_code == 422
        assert shared.client.http.get(f"/api/stream?{query}").status_code == 422
    assert shared.client.http.get(f"/api/jobs/{run_id}/steps/{BIG}/batch").status_code == 422


@pytest.mark.parametrize("last_event_id", ["null", "junk", b"\xb2", str(BIG), "-5", ""])  # b"\xb2": "²".isdigit()
def test_junk_last_event_id_counts_as_none(shared: RunningServer, run_id: str, last_event_id: str | bytes) -> None:
    """Regression: `Last-Event-ID: null` answered 500 (or 200 with an empty body)."""
    shared.client.request("POST", f"/api/jobs/{run_id}/events", json={"attempt": 7, "events": [EVENT]})
    with shared.client.http.stream("GET", f"/api/jobs/{run_id}/stream",
                                   headers={"Last-Event-ID": last_event_id}) as response:
        assert response.status_code == 200
        first = next(parse_sse(response.iter_lines()))
    assert first.seq == 1 and first.type == "metric"


def test_damaged_rows_never_take_the_listing_or_the_start_down(tmp_path: Path) -> None:
    """Regression: a `progress` event with `"step": "abc"` was stored; GET /api/jobs answered 500 from then
    on and `serve` on that folder failed at start-up. Rows damaged some other way are reported and skipped
    (or, for what reporters derive, shown as none)."""
    data_dir = tmp_path / ".finetune-studio"
    first = start_server(data_dir)
    try:
        kept = first.client.request("POST", "/api/runs", json={"name": "kept"})["id"]
        broken = first.client.request("POST", "/api/runs", json={"name": "broken"})["id"]
        lost = first.client.request("POST", "/api/runs", json={"name": "lost"})["id"]
    finally:
        first.stop()
    with sqlite3.connect(data_dir / "studio.db") as db:
        db.execute("UPDATE jobs SET progress = ?, best_metric = ? WHERE id = ?",
                   ('{"step": "abc"}', '{"eval/accuracy": "high"}', broken))
        db.execute("UPDATE jobs SET state = 'exploded' WHERE id = ?", (lost,))
    db.close()
    second = start_server(data_dir)
    try:
        jobs = {job["id"]: job for job in second.client.request("GET", "/api/jobs")["jobs"]}
        assert set(jobs) == {kept, broken}
        assert jobs[broken]["progress"]["step"] == 0 and jobs[broken]["best_metric"] is None
        assert second.client.job(broken).name == "broken"
    finally:
        second.stop()


# -- captures: a total budget, oldest first; delete; pages ------------------------------------------------
def _capture(server: RunningServer, name: str, floats: int = 16) -> str:
    data = base64.b64encode(np.arange(floats, dtype="<f4").tobytes()).decode()
    summary = {"kind": "tensor", "shape": [floats], "dtype": "float32", "device": "cpu", "numel": floats,
               "bytes": floats * 4, "text": name}
    body = {"name": name, "kind": "tensor", "summary": summary,
            "arrays": {"preview": {"shape": [floats], "data": data}}}
    return str(server.client.request("POST", "/api/tensors", json=body)["id"])


def _status(server: RunningServer, path: str) -> int:
    return server.client.http.get(path).status_code


def test_captures_stay_within_their_budget_oldest_first(tmp_path: Path) -> None:
    """Regression: 1,010 captures took 1 GB with no retention and no total cap."""
    server = start_server(tmp_path / ".finetune-studio", extra_env={"FINETUNE_STUDIO_CAPTURE_BUDGET_MB": "1"})
    try:
        ids = [_capture(server, f"c{i}", floats=75_000) for i in range(6)]  # 300 KB each
        files = list((server.data_dir / "tensors").glob("*.safetensors"))
        assert sum(f.stat().st_size for f in files) <= 1 << 20
        kept = [t["id"] for t in server.client.request("GET", "/api/tensors")["tensors"]]
        assert kept == ids[::-1][:len(kept)] and 2 <= len(kept) < 6  # the newest, newest first
        assert _status(server, f"/api/tensors/{ids[0]}") == 404 and _status(server, f"/api/tensors/{ids[-1]}") == 200
        assert {f.stem for f in files} == set(kept)
    finally:
        server.stop()


def test_a_capture_can_be_deleted(shared: RunningServer) -> None:
    capture = _capture(shared, "to delete")
    assert shared.client.http.delete(f"/api/tensors/{capture}").status_code == 204
    assert _status(shared, f"/api/tensors/{capture}") == 404
    assert not (shared.data_dir / "tensors" / f"{capture}.safetensors").exists()
    assert shared.client.http.delete(f"/api/tensors/{capture}").status_code == 404


def test_captures_are_listed_a_page_at_a_time(shared: RunningServer) -> None:
    """Regression: GET /api/tensors stopped at 1,000 with no way to the rest."""
    made_in_order = [_capture(shared, f"page {i}") for i in range(5)]
    made = set(made_in_order)
    seen: list[str] = []
    before: int | None = None
    while True:
        params: dict[str, Any] = {"limit": 2} if before is None else {"limit": 2, "before": before}
        page = shared.client.request("GET", "/api/tensors", params=params)
        assert len(page["tensors"]) <= 2
        seen += [t["id"] for t in page["tensors"]]
        before = page["next"]
        if before is None:
            break
    assert made <= set(seen) and len(seen) == len(set(seen))
    assert [i for i in seen if i in made] == made_in_order[::-1]  # newest first
