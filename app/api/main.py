"""The FastAPI application: routes, the one place errors become `{"error": {...}}`, health and metrics."""

import hmac
import logging
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import DataError, OperationalError
from starlette.exceptions import HTTPException
from starlette.routing import Match

from app import logs
from app.api.compat import too_old
from app.api.devices import router as devices_router
from app.api.webhook_secret import router as webhook_secret_router
from app.datasets.endpoints import router as datasets_router
from app.datasets.resumable import router as uploads_router
from app.db import session_scope
from app.errors import ShearsError
from app.housekeeping.endpoints import router as housekeeping_router
from app.jobs.endpoints import router as jobs_router
from app.jobs.service import queues_without_live_worker
from app.metrics import LATENCY, REQUESTS
from app.models.endpoints import router as models_router
from app.queue import broker_reachable
from app.settings import get_settings
from app.storage import readiness as storage_readiness
from app.ui.pages import router as ui_router
from contract import jail

log = logging.getLogger("shears.api")
access = logging.getLogger("shears.access")


def _error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, **extra}}, status_code=status)


def create_app() -> FastAPI:
    settings = get_settings()
    logs.configure(settings.log_level, settings.log_format)
    # Its environment (database URL, keys) and memory out of reach of a same-uid process.
    jail.make_undumpable()
    app = FastAPI(
        title="Shears",
        version="0.1.0",
        description="Pruning as a service for on-device AI: upload a Keras model and data, "
        "get back a smaller TensorFlow Lite model with its accuracy, size and latency.",
    )
    for router in (
        models_router,
        datasets_router,
        uploads_router,
        jobs_router,
        devices_router,
        webhook_secret_router,
        ui_router,
        housekeeping_router,
    ):
        app.include_router(router)

    @app.exception_handler(ShearsError)
    async def _shears_error(_: Request, exc: ShearsError) -> JSONResponse:
        response = _error(exc.status_code, exc.code, exc.message)
        if exc.status_code == 401:
            response.headers["WWW-Authenticate"] = "Bearer"
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            response.headers["Retry-After"] = str(retry_after)
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"field": ".".join(str(p) for p in e.get("loc", ()) if p != "body"), "problem": e.get("msg", "")}
            for e in exc.errors()
        ]
        message = "; ".join(f"{d['field'] or 'body'}: {d['problem']}" for d in details)
        return _error(422, "invalid_request", message, details=details)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        codes = {400: "malformed_request", 404: "not_found", 405: "method_not_allowed"}
        response = _error(exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail))
        response.headers.update(exc.headers or {})
        if exc.status_code == 405:
            # Starlette names only the first matching route's methods; a path served by
            # several routes (GET and POST /v1/jobs) must list them all.
            allowed = {
                method
                for route in request.app.routes
                if isinstance(route, APIRoute) and route.matches(request.scope)[0] != Match.NONE
                for method in route.methods or ()
            }
            response.headers["Allow"] = ", ".join(sorted(allowed))
        return response

    @app.exception_handler(OperationalError)
    async def _database_down(request: Request, exc: OperationalError) -> JSONResponse:
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc.orig)
        response = _error(503, "database_unavailable", "the database is unreachable; retry shortly")
        response.headers["Retry-After"] = "5"
        return response

    @app.exception_handler(DataError)
    async def _unstorable(request: Request, exc: DataError) -> JSONResponse:
        # A value the database refuses (a NUL character in a string, say): the caller's input.
        log.info("database refused a value on %s %s: %s", request.method, request.url.path, exc.orig)
        return _error(422, "invalid_request", "the request holds a value that cannot be stored (e.g. a NUL character)")

    @app.middleware("http")
    async def _observe(request: Request, call_next: Any) -> Response:
        """Request id in and out (`X-Request-ID`), a log line and metrics for every request."""
        start = time.perf_counter()
        request_id = logs.request_id_from(request.headers.get("x-request-id"))
        with logs.bound(request_id=request_id):
            try:
                response: Response = too_old(request, settings.min_client_version) or await call_next(request)
            except Exception:  # a bug: logged, counted and answered here, with the request's id
                log.exception("unhandled error on %s %s", request.method, request.url.path)
                response = _error(500, "internal_error", "an internal error occurred; it has been logged")
            route = request.scope.get("route")
            path = getattr(route, "path", "unmatched")
            elapsed = time.perf_counter() - start
            REQUESTS.labels(path, request.method, str(response.status_code)).inc()
            LATENCY.labels(path, request.method).observe(elapsed)
            access.info(
                "%s %s %s",
                request.method,
                request.url.path,
                response.status_code,
                extra={"route": path, "status": response.status_code, "duration_ms": round(elapsed * 1000, 2)},
            )
        response.headers["X-Request-ID"] = request_id
        return response

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses={503: {"description": "a dependency is unreachable"}})
    def readyz() -> JSONResponse:
        checks: dict[str, str] = {}
        orphaned: list[str] | None = None
        try:  # one round trip's worth: the database answers, and which queues a live worker serves
            with session_scope() as session:
                session.execute(text("SELECT 1"))
                # A queue no live worker serves: its jobs would wait forever (a worker killed, say).
                orphaned = queues_without_live_worker(session, get_settings())
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"unreachable: {type(exc).__name__}"
        checks["broker"] = "ok" if broker_reachable() else "unreachable"
        checks["storage"] = storage_readiness()
        if orphaned is not None:
            checks["worker"] = "ok" if not orphaned else f"no_live_worker: {','.join(orphaned)}"
        ready = all(v == "ok" for v in checks.values())
        body: dict[str, Any] = {"status": "ready" if ready else "not_ready", "checks": checks}
        if checks.get("worker", "").startswith("no_live_worker") and all(
            v == "ok" for k, v in checks.items() if k != "worker"
        ):
            body["code"] = "no_live_worker"
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics", tags=["health"], response_class=Response, responses={401: {"description": "token needed"}})
    def metrics(request: Request) -> Response:
        token = get_settings().metrics_token
        if token:  # SHEARS_METRICS_TOKEN: scrapers present it as a bearer token
            given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(given.encode(), token.encode()):
                return _error(401, "unauthorized", "/metrics needs the metrics token (Authorization: Bearer ...)")
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


app = create_app()
