"""The FastAPI app: routes only. Auth (token) and the Host check guard everything; domain errors are
translated to HTTP here, once. State lives in the store; the scheduler owns workers."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from . import __version__, batches
from .broker import GLOBAL, Broker
from .errors import NotFound, SpecError, StudioError
from .scheduler import Scheduler
from .settings import Settings, is_loopback
from .spec import parse_spec, spec_json_schema
from .store import Store
from .tensor_routes import tensor_router
from .wire import (
    FINISHED_STATES,
    Health,
    IngestBatch,
    IngestResult,
    Job,
    JobList,
    Logs,
    Metrics,
    RunCreate,
    Samples,
    StepBatch,
    StreamEvent,
    SystemInfo,
)

COOKIE = "fts_token"
STREAM_PAGE = 2000
DASHBOARD_DIR = Path(str(resources.files("finetune_studio") / "dashboard"))


def create_app(settings: Settings, url: str = "") -> FastAPI:
    """`url` is where workers reach this server; the CLI knows it once the socket is bound."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(settings.data_dir / "studio.db")
    broker = Broker()
    scheduler = Scheduler(store, broker, settings.data_dir, url or f"http://{settings.host}:{settings.port}",
                          settings.token)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        broker.bind(asyncio.get_running_loop())
        await scheduler.start()
        yield
        await scheduler.stop()
        store.close()

    app = FastAPI(title="Fine-Tune Studio", version=__version__, lifespan=lifespan,
                  telemetry={"tracing": False, "metrics": False, "logs": False})
    app.state.settings, app.state.store, app.state.scheduler, app.state.broker = settings, store, scheduler, broker

    @app.middleware("http")
    async def refuse_foreign_hosts(request: Request, call_next: Any) -> Response:
        # DNS rebinding: a page of another site resolving its name to 127.0.0.1 sends its own Host.
        host = request.headers.get("host", "").rsplit(":", 1)[0] if "]" not in request.headers.get(
            "host", "") else request.headers.get("host", "").split("]")[0] + "]"
        if not settings.allow_remote and not is_loopback(host):
            return JSONResponse({"detail": f"Host {host!r} is not allowed", "type": "forbidden_host",
                                 "hint": "open the dashboard through 127.0.0.1 or localhost"}, status_code=403)
        response: Response = await call_next(request)
        return response

    @app.exception_handler(StudioError)
    async def studio_error(request: Request, error: StudioError) -> JSONResponse:
        if isinstance(error, SpecError):
            detail: Any = [{"loc": p.field.split(".") if p.field else [], "field": p.field, "msg": p.message}
                           for p in error.problems]
        else:
            detail = error.message
        return JSONResponse({"detail": detail, "type": error.type, "hint": error.hint},
                            status_code=error.status_code)

    def require_token(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
        given = authorization.removeprefix("Bearer ").strip() if authorization else request.cookies.get(COOKIE)
        if not given or not secrets.compare_digest(given.encode(), settings.token.encode()):
            raise HTTPException(401, "missing or wrong token: open the URL printed by `finetune-studio serve`, "
                                "or send `Authorization: Bearer <token>` (see .finetune-studio/server.json)")

    open_api = APIRouter(prefix="/api")
    api = APIRouter(prefix="/api", dependencies=[Depends(require_token)])

    @open_api.get("/health")
    def health() -> Health:
        return Health(version=__version__)

    @api.get("/system")
    def system() -> SystemInfo:
        import torch
        import transformers

        return SystemInfo(devices=scheduler.devices(),
                          versions={"finetune_studio": __version__, "torch": torch.__version__,
                                    "transformers": transformers.__version__})

    @api.get("/schema/job-spec")
    def job_spec_schema() -> dict[str, Any]:
        return spec_json_schema()

    @api.post("/jobs", status_code=201)
    def submit(body: dict[str, Any]) -> Job:
        return scheduler.submit(parse_spec(body, settings.project_dir))

    @api.get("/jobs")
    def list_jobs() -> JobList:
        return JobList(jobs=store.list_jobs())

    @api.get("/jobs/{job_id}")
    def get_job(job_id: str) -> Job:
        return store.get_job(job_id)

    @api.post("/jobs/{job_id}/cancel")
    async def cancel(job_id: str) -> Job:
        return scheduler.cancel(job_id)

    @api.post("/jobs/{job_id}/resume")
    async def resume(job_id: str) -> Job:
        return scheduler.resume(job_id)

    @api.delete("/jobs/{job_id}", status_code=204)
    def delete(job_id: str, files: bool = False) -> None:
        scheduler.delete(job_id, files)

    @api.get("/jobs/{job_id}/metrics")
    def metrics(job_id: str, names: str | None = None,
                max_points: Annotated[int, Query(ge=10, le=1_000_000)] = 2000) -> Metrics:
        store.get_job(job_id)
        # Read before the series: events after it may repeat a point read below; merged by step, harmless.
        result = Metrics(series={}, last_seq=store.last_seq(job_id))
        wanted = [n for n in names.split(",") if n] if names else store.metric_names(job_id)
        for name in wanted:
            result.series[name], result.total_points[name] = store.series(job_id, name, max_points)
        return result

    @api.get("/jobs/{job_id}/logs")
    def logs(job_id: str, after: int = 0, limit: Annotated[int, Query(ge=1, le=10_000)] = 1000) -> Logs:
        store.get_job(job_id)
        return Logs(lines=store.logs(job_id, after, limit))

    @api.get("/jobs/{job_id}/steps/{step}/batch")
    def step_batch(job_id: str, step: int) -> StepBatch:
        job = store.get_job(job_id)
        if job.kind != "managed":
            raise NotFound(f"job {job_id} is an attached run: its batches are not recorded")
        return batches.step_batch(scheduler.job_dir(job_id), job.spec, step)

    @api.get("/jobs/{job_id}/evals/latest")
    def latest_eval(job_id: str) -> StreamEvent | None:
        store.get_job(job_id)
        return store.latest_eval(job_id)

    @api.get("/jobs/{job_id}/samples")
    def samples(job_id: str) -> Samples:
        store.get_job(job_id)
        latest = store.latest_eval(job_id)
        if latest is None:
            return Samples()
        return Samples(step=latest.data.get("step"), samples=latest.data.get("samples", []))

    @api.get("/jobs/{job_id}/stream", response_class=EventSourceResponse)
    async def job_stream(job_id: str, after: int | None = None,
                         last_event_id: Annotated[str | None, Header()] = None) -> AsyncIterator[ServerSentEvent]:
        await run_in_threadpool(store.get_job, job_id)
        cursor = after if after is not None else int(last_event_id or 0)
        with broker.listen(job_id) as news:
            while True:
                news.clear()  # before reading: news arriving during the read wakes the wait below
                events = await run_in_threadpool(store.events_after, job_id, cursor, STREAM_PAGE)
                for event in events:
                    cursor = event.seq
                    yield ServerSentEvent(data=event.model_dump(mode="json"), event=event.type, id=str(event.seq))
                if len(events) < STREAM_PAGE:
                    await news.wait()

    @api.get("/stream", response_class=EventSourceResponse)
    async def global_stream(after: int | None = None,
                            last_event_id: Annotated[str | None, Header()] = None) -> AsyncIterator[ServerSentEvent]:
        cursor = after if after is not None else int(last_event_id or broker.global_seq)
        with broker.listen(GLOBAL) as news:
            while True:
                news.clear()
                changes, _ = broker.job_changes_after(cursor)
                for seq, job in changes:
                    cursor = seq
                    yield ServerSentEvent(data=job.model_dump(mode="json"), event="state", id=str(seq))
                await news.wait()

    @api.post("/jobs/{job_id}/events")
    def ingest(job_id: str, batch: IngestBatch) -> IngestResult:
        job = store.get_job(job_id)
        stored = store.ingest(job_id, batch.attempt, batch.events)
        broker.notify_threadsafe(job_id)
        types = {e.type for e in stored}
        for end in (e for e in stored if e.type == "end"):
            scheduler_call(scheduler.finish_run, job_id, end.data.get("state", "completed"), end.data.get("error"))
        if types & {"progress", "eval"} and job.state not in FINISHED_STATES:
            scheduler_call(scheduler.progress_changed, job_id)
        return IngestResult(accepted=len(stored), duplicates=len(batch.events) - len(stored))

    def scheduler_call(fn: Any, *args: Any) -> None:
        """The scheduler and broker live on the event loop; sync routes run in a thread pool."""
        loop = broker._loop  # noqa: SLF001 - bound at start
        if loop is not None:
            asyncio.run_coroutine_threadsafe(_call(fn, *args), loop).result(timeout=30)

    @api.post("/runs", status_code=201)
    async def open_run(run: RunCreate) -> Job:
        return scheduler.open_run(run, run.pid)

    api.include_router(tensor_router(store, settings.data_dir))  # captures from the debugger
    app.include_router(open_api)
    app.include_router(api)

    @app.get("/", include_in_schema=False)
    def index(request: Request, token: str | None = None) -> Response:
        if token is not None:
            if not secrets.compare_digest(token.encode(), settings.token.encode()):
                raise HTTPException(401, "wrong token: use the URL printed by `finetune-studio serve`")
            query = "&".join(f"{k}={v}" for k, v in request.query_params.items() if k != "token")
            response = RedirectResponse("/" + (f"?{query}" if query else ""), status_code=303)
            response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
            return response
        return FileResponse(DASHBOARD_DIR / "index.html", headers={"Cache-Control": "no-store"})

    @app.get("/static/plotly.min.js", include_in_schema=False)
    def plotly_js() -> FileResponse:
        import plotly

        return FileResponse(Path(plotly.__file__).parent / "package_data" / "plotly.min.js",
                            media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})

    app.mount("/static", StaticFiles(directory=DASHBOARD_DIR), name="static")
    return app


async def _call(fn: Any, *args: Any) -> Any:
    return fn(*args)
