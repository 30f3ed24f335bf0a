"""The dashboard at `/ui`: server-rendered pages over the same services as the JSON API.

A browser logs in once with an API key and then carries a signed session cookie
(`app.auth.sessions`); every page but the login form needs it. The cookie is
`SameSite=Strict`, and every form that changes something (log in, log out, cancel) also
checks the request's `Origin`; cancel carries a token derived from the session as well, so
another site can neither use a session nor plant one.
"""

import hashlib
import hmac
import json
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session

from app import pagination
from app.api.deps import SessionDep, StoreDep
from app.auth.sessions import SESSION_TTL_S, end_session, open_session, session_tenant
from app.errors import NotFound, ShearsError, Unauthorized
from app.jobs import lifecycle, repository, service
from app.jobs.endpoints import download_artifact
from app.jobs.schemas import JobOut
from app.storage import ArtifactStore
from app.tables import TERMINAL, Job, JobStatus, Tenant
from app.ui.figures import FORMATS

HERE = Path(__file__).parent
STATIC = {p.name: p for p in (HERE / "static").iterdir() if p.is_file()}
COOKIE = "shears_session"
PAGE_SIZE = 50
HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}

templates = Jinja2Templates(directory=HERE / "templates")
templates.env.globals.update(FORMATS)


class LoginRequired(Exception):
    """A page was asked for without a live session: the browser goes to the login form."""


def _error_page(request: Request, status: int, message: str) -> Response:
    return templates.TemplateResponse(
        request, "error.html", {"status": status, "message": message, "tenant": None}, status_code=status
    )


class PageRoute(APIRoute):
    """Every dashboard route: the login redirect, errors as pages, and the security headers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page(request: Request) -> Response:
            try:
                response = await handler(request)
            except LoginRequired:
                response = RedirectResponse("/ui/login", status_code=303)
            except ShearsError as exc:
                response = _error_page(request, exc.status_code, exc.message)
            for name, value in HEADERS.items():
                response.headers.setdefault(name, value)
            return response

        return page


router = APIRouter(prefix="/ui", include_in_schema=False, route_class=PageRoute)


def session_viewer(request: Request, session: SessionDep) -> Tenant:
    return session_tenant(session, request.cookies.get(COOKIE))


def page_viewer(request: Request, session: SessionDep) -> Tenant:
    try:
        return session_viewer(request, session)
    except Unauthorized as exc:
        raise LoginRequired() from exc


# Pages send a browser without a session to the login form; the progress feed answers 401.
Viewer = Annotated[Tenant, Depends(page_viewer)]
FeedViewer = Annotated[Tenant, Depends(session_viewer)]


def _same_origin(request: Request) -> bool:
    """Browsers send `Origin` with every form POST; a request from another site is refused.

    The site is the host the browser asked for: `X-Forwarded-Host` when a proxy in front sets it
    (it may rewrite `Host`), else `Host`."""
    origin = request.headers.get("origin")
    host = request.headers.get("x-forwarded-host", "").split(",")[0].strip() or request.headers.get("host")
    return origin is None or urlsplit(origin).netloc == host


def _over_tls(request: Request) -> bool:
    """Whether the browser reached us over HTTPS, here or at a TLS-terminating proxy. The header is
    trusted only to make the cookie `Secure`, which a liar can only use to lose it over plain HTTP."""
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


def _form_token(request: Request) -> str:
    """The token a state-changing form must echo: only a page of this site can read it."""
    session_token = request.cookies.get(COOKIE, "")
    return hmac.new(session_token.encode(), b"shears-ui-form", hashlib.sha256).hexdigest()


def _checked(*names: str) -> None:
    """Ids and file names with NUL or other control characters name nothing: 404 before any query."""
    for name in names:
        if not name.isprintable():
            raise NotFound("no such job or file")


def _report(job: Job, session: Session, store: ArtifactStore) -> dict[str, Any] | None:
    artifact = repository.artifact(session, job.id, "report.json") if job.status == JobStatus.SUCCEEDED else None
    if artifact is None or not store.exists(artifact.storage_key):
        return None
    with store.open(artifact.storage_key) as f:
        report: dict[str, Any] = json.load(f)
    return report


@router.get("")
def home() -> Response:
    return RedirectResponse("/ui/jobs", status_code=303)


@router.get("/login")
def login_form(request: Request) -> Response:
    return templates.TemplateResponse(request, "login.html", {"error": None, "tenant": None})


@router.post("/login")
def login(request: Request, session: SessionDep, key: Annotated[str, Form()] = "") -> Response:
    if not _same_origin(request):
        return _error_page(request, 403, "this form can only be sent from this site")
    try:
        _, token = open_session(session, key)
    except Unauthorized:
        context = {"error": "That key is unknown or revoked.", "tenant": None}
        return templates.TemplateResponse(request, "login.html", context, status_code=401)
    response = RedirectResponse("/ui/jobs", status_code=303)
    response.set_cookie(
        COOKIE,
        token,
        max_age=SESSION_TTL_S,
        path="/ui",
        httponly=True,
        samesite="strict",
        secure=_over_tls(request),
    )
    return response


@router.post("/logout")
def logout(request: Request, session: SessionDep) -> Response:
    if not _same_origin(request):
        return _error_page(request, 403, "this form can only be sent from this site")
    end_session(session, request.cookies.get(COOKIE))  # a copy of the cookie stops working too
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(COOKIE, path="/ui", httponly=True, samesite="strict")
    return response


@router.get("/jobs")
def jobs_page(request: Request, session: SessionDep, tenant: Viewer, cursor: str | None = None) -> Response:
    jobs, next_cursor = pagination.split(repository.list_for(session, tenant.id, None, cursor, PAGE_SIZE), PAGE_SIZE)
    context = {"tenant": tenant, "jobs": jobs, "next_cursor": next_cursor}
    return templates.TemplateResponse(request, "jobs.html", context)


@router.get("/jobs/{job_id}")
def job_page(request: Request, job_id: str, session: SessionDep, tenant: Viewer, store: StoreDep) -> Response:
    _checked(job_id)
    job = service.get_job(session, tenant.id, job_id)
    files = [a.kind for a in repository.artifacts(session, job.id)] if job.status == JobStatus.SUCCEEDED else []
    context = {
        "tenant": tenant,
        "job": job,
        "report": _report(job, session, store),
        "files": files,
        "images": [name for name in files if name.endswith(".png")],
        "points": repository.children(session, job.id) if job.kind == "sweep" else [],
        "cancellable": job.status not in TERMINAL and job.cancel_requested_at is None,
        "form_token": _form_token(request),
    }
    return templates.TemplateResponse(request, "job.html", context)


@router.post("/jobs/{job_id}/cancel")
def cancel_job(
    request: Request, job_id: str, session: SessionDep, tenant: Viewer, form_token: Annotated[str, Form()] = ""
) -> Response:
    """The job page's cancel button: the same rule as `POST /v1/jobs/{id}/cancel`."""
    _checked(job_id)
    service.get_job(session, tenant.id, job_id)  # another tenant's job is a 404, whatever the form says
    sent = form_token.encode(errors="replace")  # bytes: compare_digest refuses non-ASCII str
    if not (_same_origin(request) and hmac.compare_digest(sent, _form_token(request).encode())):
        return _error_page(request, 403, "this form can only be sent from this site")
    lifecycle.cancel(session, tenant.id, job_id)
    return RedirectResponse(f"/ui/jobs/{job_id}", status_code=303)


@router.get("/jobs/{job_id}/progress.json")
def job_progress(job_id: str, session: SessionDep, tenant: FeedViewer) -> Response:
    """What the pages poll to move their progress bars (the JSON API wants an API key)."""
    _checked(job_id)
    out = JobOut.from_row(service.get_job(session, tenant.id, job_id))
    return JSONResponse({k: out[k] for k in ("id", "status", "stage", "progress", "error")})


@router.get("/jobs/{job_id}/files/{name}")
def job_file(job_id: str, name: str, session: SessionDep, tenant: Viewer, store: StoreDep) -> Response:
    """A file the job produced (model, report, plot), served by the JSON API's own route."""
    _checked(job_id, name)
    response = download_artifact(job_id, name, session, tenant, store)
    if response.media_type and response.media_type.startswith("image/"):
        response.headers["Content-Disposition"] = f'inline; filename="{name}"'
    return response


@router.get("/static/{name}")
def static_file(name: str) -> Response:
    path = STATIC.get(name)
    if path is None:
        raise NotFound(f"no file {name!r}")
    return FileResponse(path, headers={"Cache-Control": "public, max-age=300"})
