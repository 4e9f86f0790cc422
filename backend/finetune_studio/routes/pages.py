"""The dashboard: `/` (with the one-time `?token=` login that sets the cookie), Plotly.js from the
installed `plotly` package, and the static ES modules."""

from __future__ import annotations

import secrets
from importlib import resources
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import FileResponse, RedirectResponse

from ..guard import COOKIE
from .deps import SettingsDep

DASHBOARD_DIR = Path(str(resources.files("finetune_studio") / "dashboard"))

router = APIRouter(include_in_schema=False)


@router.get("/")
def index(request: Request, settings: SettingsDep, token: str | None = None) -> Response:
    if token is not None:
        if not secrets.compare_digest(token.encode(), settings.token.encode()):
            raise HTTPException(401, "wrong token: use the URL printed by `finetune-studio serve`")
        query = "&".join(f"{k}={v}" for k, v in request.query_params.items() if k != "token")
        response = RedirectResponse("/" + (f"?{query}" if query else ""), status_code=303)
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
        return response
    return FileResponse(DASHBOARD_DIR / "index.html", headers={"Cache-Control": "no-store"})


@router.get("/static/plotly.min.js")
def plotly_js() -> FileResponse:
    import plotly

    return FileResponse(Path(plotly.__file__).parent / "package_data" / "plotly.min.js",
                        media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})
