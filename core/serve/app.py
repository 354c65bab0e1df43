"""The HTTP face of ``Service``: FastAPI routes, the token check, upload limits and the page.

Read-only by design: no route writes, moves or deletes a user's file; uploads live in a temporary file for the
length of their request. Errors are JSON ``{"detail": reason}`` (plus ``"field"`` for an upload): 401 without
the token, 404 for a path outside the served folders, 409 for a second rescan, 413 for an upload over the size
limit or the decompression-bomb pixel limit, 422 for an upload that is not a readable image (the reason the
CLI gives)."""

from __future__ import annotations

import hmac
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from importlib import resources
from typing import Annotated, Literal

from fastapi import FastAPI, File, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from core.errors import DecodeError
from core.serve.service import BadImage, Service

MAX_UPLOAD = 50 * 1024 * 1024  # bytes per uploaded image
_FORM_OVERHEAD = 1 << 20  # multipart headers and boundaries around the images
_BODY_LIMITS = {"/v1/similar": 1, "/v1/compare": 2}  # images per request; other requests carry no body
_OPEN = {"/"}  # answered without the token: the page, which asks for it


class _JSON(JSONResponse):
    """JSON in ASCII: file names that are not valid UTF-8 (surrogate-escaped) stay faithful, never a crash."""

    def render(self, content) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


class Refused(Exception):
    """A request answered with ``status`` and a reason."""

    def __init__(self, status: int, reason: str, field: str | None = None, **extra) -> None:
        super().__init__(reason)
        self.status, self.reason, self.field, self.extra = status, reason, field, extra


def _refusal(
    status: int, reason: str, field: str | None = None, headers: dict | None = None, **extra
) -> _JSON:
    body = {"detail": reason, **({"field": field} if field else {}), **extra}
    return _JSON(body, status_code=status, headers=headers)


class Guard:
    """ASGI middleware: the bearer token on every route but the page, and a bound on request bodies.

    A body over its bound is refused from its Content-Length before any of it is read, or, sent without one,
    as soon as the bound is passed: whatever the app would have answered then becomes the 413.
    """

    def __init__(self, app: ASGIApp, token: str | None, max_upload: int, cors: bool) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode() if token else None
        self.max_upload = max_upload
        self.cors = cors

    def _limit(self, path: str) -> int:
        return _BODY_LIMITS.get(path, 0) * self.max_upload + _FORM_OVERHEAD

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]
        if self.expected and path not in _OPEN and not (self.cors and method == "OPTIONS"):
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                await _refusal(
                    401,
                    "a token is required: send 'Authorization: Bearer <token>'",
                    headers={"WWW-Authenticate": "Bearer"},
                )(scope, receive, send)
                return
        limit = self._limit(path)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            await self._too_large(path)(scope, receive, send)
            return
        state = {"read": 0, "over": False, "answered": False}

        async def counted():
            message = await receive()
            if message["type"] == "http.request":
                state["read"] += len(message.get("body", b""))
                if state["read"] > limit:
                    state["over"] = True
                    raise Refused(413, "upload too large")
            return message

        async def guarded(message):
            if state["over"]:
                if not state["answered"]:
                    state["answered"] = True
                    await self._too_large(path)(scope, receive, send)
                return
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            if not state["over"]:
                raise
            if not state["answered"]:
                state["answered"] = True
                await self._too_large(path)(scope, receive, send)

    def _too_large(self, path: str) -> _JSON:
        n = _BODY_LIMITS.get(path, 0)
        if not n:
            return _refusal(413, "this request takes no body")
        return _refusal(413, f"upload too large: at most {self.max_upload // (1 << 20)} MB an image")


@contextmanager
def _saved(upload: UploadFile, field: str, limit: int) -> Iterator[str]:
    """The upload copied to a private temporary file, deleted afterwards; 413 past ``limit`` bytes."""
    fd, path = tempfile.mkstemp(prefix="lookalike-upload-")
    try:
        with os.fdopen(fd, "wb") as out:
            upload.file.seek(0)
            n = 0
            while chunk := upload.file.read(1 << 20):
                n += len(chunk)
                if n > limit:
                    raise Refused(413, f"upload too large: at most {limit // (1 << 20)} MB an image", field)
                out.write(chunk)
        yield path
    finally:
        os.unlink(path)


def _bad(e: BadImage) -> Refused:
    return Refused(413 if e.too_large else 422, e.reason, e.field)


class HitOut(BaseModel):
    path: str
    similarity: float
    tier: Literal["duplicate", "similar_shot", "similar"]
    duplicate_similarity: float


class SimilarOut(BaseModel):
    results: list[HitOut]


class CompareOut(BaseModel):
    duplicate_similarity: float
    similarity: float
    same: bool
    unsure: bool  # verified as one photo, but its pixels look like another capture (never auto-selected)
    reason: str
    tier: Literal["duplicate", "similar_shot", "similar"]


def create_app(
    service: Service,
    *,
    token: str | None = None,
    cors_origins: Iterable[str] = (),
    allowed_hosts: Iterable[str] | None = None,
    max_upload: int = MAX_UPLOAD,
) -> FastAPI:
    """The app serving ``service``.

    Args:
        token: required as ``Authorization: Bearer <token>`` on every route but ``/`` (None: no token).
        cors_origins: origins allowed to call from a browser (none: CORS off).
        allowed_hosts: Host headers accepted (None: any). A loopback server should accept only its own
            names, so that a web page cannot reach it by rebinding a DNS name to 127.0.0.1.
        max_upload: bytes per uploaded image.
    """
    app = FastAPI(
        title="Lookalike",
        version="1",
        default_response_class=_JSON,
        redoc_url=None,
        description="Duplicate and similar photos in the served folders. Read-only.",
    )
    page = resources.files("core.serve").joinpath("page.html").read_text("utf-8")

    @app.exception_handler(Refused)
    async def refused(request: Request, e: Refused) -> _JSON:
        return _refusal(e.status, e.reason, e.field, **e.extra)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> HTMLResponse:
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    @app.post("/v1/similar", response_model=SimilarOut)
    def similar(
        image: Annotated[UploadFile, File(description="the image to look for")],
        k: Annotated[int, Query(ge=1, le=1000, description="how many results")] = 10,
    ) -> dict:
        """The served photos most like the upload, best first: same capture (``duplicate``), another shot
        (``similar_shot``), then the rest (``similar``)."""
        with _saved(image, "image", max_upload) as path:
            try:
                hits = service.similar(path, k)
            except BadImage as e:
                raise _bad(e) from None
        return {"results": [h.__dict__ for h in hits]}

    @app.post("/v1/compare", response_model=CompareOut)
    def compare(a: Annotated[UploadFile, File()], b: Annotated[UploadFile, File()]) -> dict:
        """Two uploads: their similarity on both vectors, and whether they are one capture."""
        with _saved(a, "a", max_upload) as pa, _saved(b, "b", max_upload) as pb:
            try:
                return service.compare(pa, pb)
            except BadImage as e:
                raise _bad(e) from None

    @app.get("/v1/groups")
    def groups(
        tier: Literal["duplicates", "similar"] = "duplicates",
        threshold: Annotated[float | None, Query(description="cosine (default: the model's)")] = None,
    ) -> dict:
        """The current groups in the ``scan --json`` shape, paths relative to the served folders."""
        try:
            return service.groups(tier, threshold)
        except ValueError as e:
            raise Refused(422, str(e)) from None

    @app.post("/v1/rescan", status_code=202)
    def rescan() -> dict:
        """Scan the folders again in the background; the current library answers until it is done."""
        job, started = service.start_rescan()
        if not started:
            raise Refused(409, "a rescan is already running", job=job.as_dict())
        return {"job": job.as_dict()}

    @app.get("/v1/jobs/{job_id}")
    def job(job_id: str) -> dict:
        j = service.job(job_id)
        if j is None:
            raise Refused(404, "no such job")
        return j.as_dict()

    @app.get("/v1/health")
    def health() -> dict:
        return service.health()

    @app.get("/v1/thumb", response_class=Response, responses={200: {"content": {"image/jpeg": {}}}})
    def thumb(path: str, size: Annotated[int, Query(ge=16, le=1024)] = 256) -> Response:
        """A JPEG thumbnail of a served photo (``path`` as the other routes give it)."""
        try:
            data = service.thumbnail(path, size)
        except DecodeError as e:
            raise Refused(422, str(e)) from None
        if data is None:
            raise Refused(404, "no such photo in the served folders")
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=300"})

    cors = list(cors_origins)
    app.add_middleware(Guard, token=token, max_upload=max_upload, cors=bool(cors))
    if cors:
        app.add_middleware(
            CORSMiddleware, allow_origins=cors, allow_methods=["GET", "POST"], allow_headers=["Authorization"]
        )
    if allowed_hosts is not None:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))
    return app
