"""The web app: `create_app(models, results_dir=None, limits=Limits())` builds a FastAPI app
with its own models, queue and capture store (nothing at module level).

Routes (JSON unless said; OpenAPI at /docs and /openapi.json):
  GET  /                                the page (static/index.html)
  GET  /api/models                      the served models
  POST /api/capture                     capture one input -> {id, meta}
  GET  /api/captures/{id}/meta          a kept capture's view meta
  GET  /api/captures/{id}/{kind}/{layer}  one per-layer buffer (bytes, the views' payload format)
  GET  /api/captures/{id}/buffers       every buffer in one body (offered in meta["bundle"] for short inputs)
  POST /api/compare                     two captures and a per-head difference map
  POST /api/predict/fill-mask           masked-LM predictions (+ the masked input's capture)
  POST /api/search                      corpus contexts where one head behaves as on one token (searching.py)
  GET  /api/results                     atlas reports and pretraining runs under --results
  GET  /results/{path}                  one report file under --results (sandboxed: it cannot script the app)
  GET  /static/views/attnlens.js        the views' front-end module (views/bundle.py), imported by static/app.js
  GET  /favicon.ico                     the app's icon (SVG)

Every request passes security.OriginGuard (only the allowed Host names; no state-changing
request from another origin) and every response gets security.SecurityHeaders.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Literal, Optional

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from ..errors import AttnlensError
from ..io import html_page
from ..views.bundle import bundle_text
from .limits import BodySizeLimit, InferenceQueue, LimitError, Limits
from .masking import mask_word_text
from .models import serve_models
from .results import REPORT_SUFFIXES, list_results, open_report_file
from .searching import DEFAULT_CORPUS, DEFAULT_LIMIT, ContextSearch
from .security import DEFAULT_HOSTS, RESULT_CSP, HostPolicy, OriginGuard, SecurityHeaders, inline_script_csp
from .service import Service

PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
            "connect-src 'self' data: blob:; object-src 'none'; base-uri 'none'; form-action 'self'; "
            "frame-ancestors 'none'")


class Input(BaseModel):
    """One input: sentence A, optional sentence B, and which served model (default: the first)."""

    model: Optional[str] = Field(None, description="A served model's name (GET /api/models).")
    text_a: str = Field(..., description="Sentence A.")
    text_b: Optional[str] = Field(None, description="Optional sentence B.")


class CaptureOut(BaseModel):
    id: str = Field(..., description="Fetch view data under /api/captures/{id}/.")
    meta: dict = Field(..., description="The views' payload meta (format attnlens.view/1).")


class CompareIn(BaseModel):
    left: Input
    right: Input


class CompareOut(BaseModel):
    left: CaptureOut
    right: CaptureOut
    aligned: bool = Field(..., description="Whether both inputs have the same tokens.")
    measure: str
    layers: int
    heads: int
    map: list[list[float]] = Field(..., description="[layer][head] difference, 0 = same attention.")


class FillMaskIn(Input):
    position: Optional[int] = Field(None, description="Token index to mask; omit when the text has [MASK] tokens.")
    top_k: int = Field(5, description="How many candidates per masked position.")
    whole_word: bool = Field(False, description="With position: mask every piece of that token's word, one mask "
                                                "token each (whole-word masking), not the token alone.")


class Candidate(BaseModel):
    token: str
    probability: float


class Prediction(BaseModel):
    position: int
    candidates: list[Candidate]


class FillMaskOut(BaseModel):
    model: str
    text_a: str
    text_b: Optional[str]
    masked_token: Optional[str] = Field(None, description="The token (with whole_word: the word) that was masked "
                                                          "(when position was given).")
    masked_positions: list[int] = Field([], description="The positions this request masked (when position was given); "
                                                        "predictions at other positions are [MASK] tokens of the text.")
    predictions: list[Prediction]
    masked: CaptureOut = Field(..., description="Capture of the masked input, for its attention.")


class SearchIn(Input):
    index: int = Field(..., description="The chosen token's index in the input ([CLS] = 0; not a special token).")
    layer: int = Field(..., description="Layer (0-based).")
    head: int = Field(..., description="Head (0-based).")
    by: Literal["query", "attention"] = Field("query", description="Rank by the head's query vector or by a "
                                                                    "summary of its attention row.")
    k: int = Field(10, description="How many contexts (at most the server's max_search_k).")


class LookedAt(BaseModel):
    position: int
    token: str
    weight: float


class SearchHit(BaseModel):
    sentence_index: int = Field(..., description="The sentence's index in the indexed sample.")
    sentence: str
    tokens: list[str] = Field(..., description="The sentence's tokens, specials included.")
    position: int = Field(..., description="The matching token's index in `tokens`.")
    similarity: float = Field(..., description="Cosine similarity to the chosen token's vector.")
    looked_at: list[LookedAt] = Field(..., description="Where the head looked from that token: its top keys.")


class SearchOut(BaseModel):
    model: str
    layer: int
    head: int
    index: int
    by: str
    token: str = Field(..., description="The chosen token.")
    corpus: str
    indexed: dict = Field(..., description="{sentences, tokens, source: memory|disk|built, seconds}.")
    search_seconds: float
    hits: list[SearchHit] = Field(..., description="Best first.")


def _docs_assets() -> str | None:
    """The folder of Swagger UI's files shipped by fastapi-offline, if installed."""
    try:
        return str(resources.files("fastapi_offline").joinpath("static"))
    except ModuleNotFoundError:
        return None


def _static_dir(package: str) -> str:
    return str(resources.files(package).joinpath("static"))


def create_app(models, results_dir: str | Path | None = None, limits: Limits | None = None,
               allowed_hosts=None, search_corpus: str = DEFAULT_CORPUS,
               search_limit: int | None = DEFAULT_LIMIT) -> FastAPI:
    """A new app serving `models` ({name: LoadedModel} or a list of names/paths; [] = the default model).

    search_corpus / search_limit: what POST /api/search indexes (a dataset name or a documents/pairs file or
    folder; a fixed sample of that many sentences, 0 or None = all), per model, mode and layer on first use.

    allowed_hosts: the `Host:` values it answers, each "name" (any port) or "name:port"; any other
    host gets 400 (DNS rebinding). Default: 127.0.0.1, localhost, [::1] and testserver (what
    Starlette's TestClient sends) on any port; `attnlens serve` passes its bound names and port.
    """
    limits = limits or Limits()
    policy = HostPolicy(DEFAULT_HOSTS if allowed_hosts is None else allowed_hosts)
    searcher = ContextSearch(search_corpus, search_limit)  # a bad corpus fails before any model loads
    served = serve_models(models)
    service = Service(served, limits, searcher)
    queue = InferenceQueue(limits.workers, limits.queue, limits.request_timeout_s)
    results_root = Path(results_dir).expanduser().resolve() if results_dir is not None else None
    if results_root is not None and not results_root.is_dir():
        raise AttnlensError(f"results folder {results_dir} does not exist")

    @asynccontextmanager
    async def lifespan(_app):
        yield
        queue.close()
        service.close()

    app = FastAPI(title="attnlens", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Capture attention of BERT-style encoders and fetch the views' data.")
    app.state.service = service
    app.state.queue = queue
    app.state.limits = limits
    app.state.allowed_hosts = policy
    app.add_middleware(BodySizeLimit, max_bytes=limits.max_body_bytes)
    # the origin checks and security headers wrap the whole stack, Starlette's error middleware
    # included, so every response (a 500 too) carries the headers and no request skips the checks
    build_stack = app.build_middleware_stack
    app.build_middleware_stack = lambda: SecurityHeaders(OriginGuard(BufferFastPath(build_stack(), service.store),
                                                                     policy))

    @app.exception_handler(LimitError)
    async def _limit(_request: Request, exc: LimitError):
        return JSONResponse({"detail": exc.message}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(AttnlensError)
    async def _user(_request: Request, exc: AttnlensError):
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
        return JSONResponse({"detail": f"invalid request: {where + ': ' if where else ''}"
                                       f"{first.get('msg', 'bad input')}",
                             "errors": jsonable_errors(exc)}, status_code=422)

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(Path(_static_dir("attnlens.server")) / "index.html",
                            headers={"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-cache"})

    docs_assets = _docs_assets()

    @app.get("/docs", include_in_schema=False)
    def docs():
        """Swagger UI from local files (package fastapi-offline), never from a CDN."""
        if docs_assets is None:
            return HTMLResponse(html_page("attnlens API", "<p>The interactive API docs need the package "
                                          "fastapi-offline (pip install 'attnlens[server]'). The schema itself is "
                                          "at <a href='/openapi.json'>/openapi.json</a>.</p>"),
                                headers={"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"})
        ui = get_swagger_ui_html(openapi_url="/openapi.json", title="attnlens API",
                                 swagger_js_url="/static/docs/swagger-ui-bundle.js",
                                 swagger_css_url="/static/docs/swagger-ui.css",
                                 swagger_favicon_url="/static/docs/favicon.png")
        # the policy allows its one inline script, by hash
        ui.headers["Content-Security-Policy"] = inline_script_csp(ui.body.decode("utf-8"))
        return ui

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon():
        return FileResponse(Path(_static_dir("attnlens.server")) / "favicon.svg", media_type="image/svg+xml",
                            headers={"Cache-Control": "max-age=86400"})

    @app.get("/api/models", summary="The served models")
    async def models_list() -> list[dict]:
        return [m.describe(limits.max_tokens) for m in served.values()]

    @app.get("/api/limits", summary="This server's limits")
    def limits_info() -> dict:
        return {k: getattr(limits, k) for k in limits.__dataclass_fields__}

    @app.post("/api/capture", summary="Capture one input", response_model=CaptureOut,
              responses={413: {"description": "Input over a limit"}, 429: {"description": "Server busy"}})
    async def capture(body: Input):
        model = service.model(body.model)
        service.check_text(body.text_a, body.text_b)
        stored = service.cached(model, body.text_a, body.text_b) or \
            await queue.run(service.capture, model, body.text_a, body.text_b)
        return {"id": stored.id, "meta": stored.meta}

    def _stored(capture_id: str):
        stored = service.store.get(capture_id)
        if stored is None:
            raise LimitError(404, f"capture {capture_id[:40]!r} is not kept (any more); submit the input again")
        return stored

    @app.get("/api/captures/{capture_id}/meta", summary="A kept capture's view meta")
    async def capture_meta(capture_id: str) -> dict:  # async: a dict lookup needs no thread
        return _stored(capture_id).meta

    @app.get("/api/captures/{capture_id}/buffers", summary="All of a capture's view data in one body (bytes)",
             response_class=Response, responses={200: {"content": {"application/octet-stream": {}}}})
    async def capture_bundle(capture_id: str):
        return Response(_stored(capture_id).bundle(), media_type="application/octet-stream",
                        headers={"Cache-Control": "private, max-age=3600"})

    @app.get("/api/captures/{capture_id}/{kind}/{layer}", summary="One layer's view data (bytes)",
             response_class=Response, responses={200: {"content": {"application/octet-stream": {}}}})
    async def capture_buffer(capture_id: str, kind: Literal["queries", "keys", "thumbs", "attention", "terms"],
                             layer: int):
        stored = _stored(capture_id)
        name = f"{kind}/{layer}"
        if name not in stored.buffers:
            raise LimitError(404, f"capture has no {name} (layers 0..{stored.meta['num_layers'] - 1}; "
                                  f"attention is sent only when it is not derived from q/k)")
        return Response(stored.buffers[name], media_type="application/octet-stream",
                        headers={"Cache-Control": "private, max-age=3600"})

    @app.post("/api/compare", summary="Two captures and a per-head difference map", response_model=CompareOut,
              responses={413: {"description": "Input over a limit"}, 429: {"description": "Server busy"}})
    async def compare(body: CompareIn):
        left, right = service.model(body.left.model), service.model(body.right.model)
        service.check_text(body.left.text_a, body.left.text_b)
        service.check_text(body.right.text_a, body.right.text_b)
        return await queue.run(service.compare, (left, body.left.text_a, body.left.text_b),
                               (right, body.right.text_a, body.right.text_b))

    @app.post("/api/predict/fill-mask", summary="Masked-LM predictions", response_model=FillMaskOut,
              responses={413: {"description": "Input over a limit"},
                         422: {"description": "No masked-LM head, or bad input"},
                         429: {"description": "Server busy"}})
    async def fill_mask(body: FillMaskIn):
        model = service.model(body.model)
        service.check_text(body.text_a, body.text_b)
        if not model.has_mlm:
            raise LimitError(422, f"model {model.name} has no masked-LM head, so it cannot predict masked tokens; "
                                  "serve a checkpoint with one (e.g. from `attnlens pretrain`)")
        if body.whole_word and body.position is not None:
            return await queue.run(_fill_word, model, body.text_a, body.text_b, body.position, body.top_k)
        result = await queue.run(service.fill_mask, model, body.text_a, body.text_b, body.position, body.top_k)
        return {**result, "masked_positions": [] if body.position is None else [body.position]}

    @app.post("/api/search", summary="Corpus contexts where one head behaves as on one token",
              response_model=SearchOut,
              responses={413: {"description": "Input over a limit"}, 422: {"description": "Bad input"},
                         429: {"description": "Server busy"}})
    async def search_contexts(body: SearchIn):
        """The first search of a (model, by, layer) indexes the server's search corpus sample (seconds)."""
        model = service.model(body.model)
        service.check_text(body.text_a, body.text_b)
        service.check_search(model, body.layer, body.head, body.k)
        return await queue.run(service.search, model, body.text_a, body.text_b, body.index, body.layer, body.head,
                               body.by, body.k)

    def _fill_word(model, text_a: str, text_b: str | None, position: int, top_k: int) -> dict:
        """Whole-word masking of token `position`'s word, then the predictions at every mask. Blocking."""
        with model.lock:  # the model's tokenizer, like its hooks, serves one job at a time
            new_a, new_b, positions, word = mask_word_text(model.lm.tokenizer, text_a, text_b, position)
        result = service.fill_mask(model, new_a, new_b, None, top_k)
        return {**result, "masked_token": word, "masked_positions": positions}

    @app.get("/api/results", summary="Atlas reports and pretraining runs in the results folder")
    def results() -> dict:
        return list_results(results_root)

    @app.get("/results/{path:path}", summary="One report file from the results folder",
             responses={200: {"content": {t.split(";")[0]: {} for t in REPORT_SUFFIXES.values()}}})
    def result_file(path: str):
        found = open_report_file(results_root, path)
        if found is None:
            raise LimitError(404, "no such report file")
        target, stat = found
        # sandboxed: a result file (a report someone sent you) cannot script the app's origin
        return FileResponse(target, media_type=REPORT_SUFFIXES[target.suffix.lower()], stat_result=stat,
                            headers={"Content-Security-Policy": RESULT_CSP, "X-Content-Type-Options": "nosniff"})

    @app.get("/static/views/attnlens.js", include_in_schema=False)
    def views_module():
        """The views' front-end module joined from views/static/src/ (the /static/views mount has no such file)."""
        return Response(bundle_text(), media_type="application/javascript; charset=utf-8",
                        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})

    if docs_assets is not None:
        app.mount("/static/docs", StaticFiles(directory=docs_assets), name="docs-static")
    app.mount("/static/views", StaticFiles(directory=_static_dir("attnlens.views")), name="views-static")
    app.mount("/static", StaticFiles(directory=_static_dir("attnlens.server")), name="server-static")
    return app


class BufferFastPath:
    """ASGI: `GET /api/captures/{id}/{kind}/{layer}` of a kept buffer, and `GET /api/captures/{id}/buffers` of a kept
    capture, answered at once, as the routes below it would (same body and headers); anything else, a miss included
    (its 404), goes on to the app.

    Why: a page fetches every layer's buffers (about 20 GETs per capture), and FastAPI's routing,
    parameter validation and response classes were about 40% of a buffer GET's CPU on the event
    loop, the thread every request shares (0.55 -> 0.35 ms per GET, measured with yappi and per-thread
    CPU time; benchmarks/bench_server.py).
    """

    HEADERS = [(b"content-type", b"application/octet-stream"), (b"cache-control", b"private, max-age=3600")]

    def __init__(self, app, store):
        self.app = app
        self.store = store

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "GET" and scope["path"].startswith("/api/captures/"):
            parts = scope["path"].split("/")  # ["", "api", "captures", id, kind, layer] or [..., id, "buffers"]
            bundle = len(parts) == 5 and parts[4] == "buffers"
            stored = self.store.get(parts[3]) if len(parts) == 6 or bundle else None
            if stored is None:
                body = None
            else:
                body = stored.bundle() if bundle else stored.buffers.get(f"{parts[4]}/{parts[5]}")
            if body is not None:
                await send({"type": "http.response.start", "status": 200,
                            "headers": [*self.HEADERS, (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def jsonable_errors(exc: RequestValidationError) -> list[dict]:
    """Validation errors without the raw input (which may be large or not JSON-able)."""
    return [{"loc": [str(x) for x in e.get("loc", ())], "msg": str(e.get("msg", ""))} for e in exc.errors()[:10]]
