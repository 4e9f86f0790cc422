"""The FastAPI app: builds the domain objects once and wires them to the routers (`routes/`).

The guard (`guard.py`) checks Host, token, origin and body size before any route runs; domain errors
become HTTP answers here, once. State lives in the store; `Jobs` owns every state change; the scheduler
owns workers.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from . import __version__
from .broker import Broker
from .captures import Captures
from .errors import SpecError, StudioError
from .guard import Guard, document
from .jobs import Jobs
from .routes import estimate as estimate_routes
from .routes import jobs as job_routes
from .routes import lineage as lineage_routes
from .routes import pages, runs, streams, system, tensors
from .scheduler import Scheduler
from .settings import Settings
from .store import Store
from .watchdog import Watchdog, silence_seconds
from .wire import IngestBatch, TensorCapture, with_models


def create_app(settings: Settings, url: str) -> FastAPI:
    """`url` is where workers reach this server; the CLI knows it once the socket is bound."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(settings.data_dir / "studio.db")
    broker = Broker()
    jobs = Jobs(store, broker, settings.data_dir)
    scheduler = Scheduler(jobs, url, settings.token)
    watchdog = Watchdog(jobs, silence_seconds(), pids_are_local=not settings.allow_remote)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        broker.bind(asyncio.get_running_loop())
        await scheduler.start()
        watchdog.start()
        yield
        await watchdog.stop()
        await scheduler.stop()
        store.close()

    app = FastAPI(title="Fine-Tune Studio", version=__version__, lifespan=lifespan,
                  telemetry={"tracing": False, "metrics": False, "logs": False})
    app.state.settings, app.state.store, app.state.broker = settings, store, broker
    app.state.jobs, app.state.scheduler = jobs, scheduler
    app.state.captures = Captures(store, settings.data_dir / "tensors", settings.capture_budget_bytes)
    app.add_exception_handler(StudioError, _studio_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _invalid_request)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    app.add_middleware(Guard, settings=settings)

    api = APIRouter(prefix="/api")
    for module in (system, job_routes, runs, streams, tensors, estimate_routes, lineage_routes):
        api.include_router(module.router)
    api.include_router(system.open_router)
    app.include_router(api)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=pages.DASHBOARD_DIR), name="static")
    plain_openapi = app.openapi
    # + what the guard answers, and the bodies that routes/tensors.py and routes/runs.py read themselves
    app.openapi = lambda: with_models(document(plain_openapi()), TensorCapture, IngestBatch)  # type: ignore[method-assign]
    gc.freeze()  # what start-up built lives as long as the server: full collections skip it (ingest: ~15% less CPU)
    return app


async def _http_error(request: Request, error: HTTPException) -> JSONResponse:
    """Starlette's and FastAPI's own refusals (a body that is not JSON, a method a path does not take) in the
    shape of every other error answer."""
    return JSONResponse({"detail": error.detail, "type": HTTPStatus(error.status_code).name.lower(), "hint": None},
                        status_code=error.status_code, headers=error.headers)


async def _invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
    """A body or parameter that does not fit its model: the same shape as a bad spec's answer. The input is
    not echoed back: it can be large, or hold what no JSON encoder sends (a lone surrogate)."""
    detail = []
    for item in error.errors():
        loc = [str(p) for p in item["loc"]]
        field = ".".join(loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc)
        detail.append({"loc": loc, "field": field, "msg": str(item["msg"]).removeprefix("Value error, "),
                       "type": item["type"]})
    return JSONResponse({"detail": detail, "type": "invalid_request",
                         "hint": "fix the named fields (the API is described at /openapi.json)"}, status_code=422)


async def _studio_error(request: Request, error: StudioError) -> JSONResponse:
    if isinstance(error, SpecError):
        detail: Any = [{"loc": p.field.split(".") if p.field else [], "field": p.field, "msg": p.message}
                       for p in error.problems]
    else:
        detail = error.message
    return JSONResponse({"detail": detail, "type": error.type, "hint": error.hint}, status_code=error.status_code)
