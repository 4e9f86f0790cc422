"""The server's guard rails and answers, against the real server (uvicorn) on a free port."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import RunningServer
from finetune_studio.client import ApiError


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
