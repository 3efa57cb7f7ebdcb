"""The explorer's server (`python -m reference serve`): a local web page where a typed prompt
goes through every step of the model, live.

Starlette on uvicorn: Starlette is a small, well-kept ASGI toolkit (the core of FastAPI) with
a static-file server that refuses paths outside its folder, and uvicorn is the server that
both recommend; together a few megabytes of pure Python, no build step, no JavaScript
framework (the page is one HTML file and one script in reference/explorer/static/).

The API, all JSON (documented on the docs page "Explore your own prompt"):

    GET  /api/model                      the model in use: name, sizes, trained or synthesized
    POST /api/run     {"prompt", "position"?}  run a prompt; the answer has what the page draws
    POST /api/append  {"token"?, "position"?}  one more token (default: the top one), via the KV cache
    POST /api/position {"position"}      the same prompt's values at another position (no recompute)
    GET  /api/attention?layer=L&head=H   one head's [T, T] scores and weights, on demand

Bad input is a 4xx answer with {"error": "..."}: never a traceback. One computation runs at a
time; a few more wait, and beyond that the answer is 503.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from pathlib import Path

from . import state
from ..errors import InputError, is_int, shown

STATIC = Path(__file__).parent / "static"
SITE = Path(__file__).resolve().parents[2] / "site"  # `mkdocs build` writes the docs here
MAX_BODY = 1 << 20  # 1 MiB
DRAIN = 16 << 20  # a larger body is read and dropped up to here, then the connection is cut
MAX_PROMPT_CHARS = 20_000
QUEUE = 4  # computations allowed to wait while one runs
BODY_SECONDS = 30  # for a request body to arrive whole


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def create_app(checkpoint, trained: bool):
    """The ASGI application for one loaded checkpoint."""
    from starlette.applications import Starlette
    from starlette.requests import ClientDisconnect
    from starlette.responses import FileResponse, JSONResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    explorer = state.Explorer(checkpoint, trained)
    tokenizer = checkpoint.tokenizer
    lock, waiting = threading.Lock(), [0]

    async def compute(fn):
        """Run `fn` in a worker thread, one at a time; refuse when too many are waiting."""
        if waiting[0] >= QUEUE:
            raise BadRequest(f"busy: {waiting[0]} requests are already waiting; try again in a moment", 503)
        waiting[0] += 1
        try:
            def locked():
                with lock:
                    return fn()
            return await asyncio.to_thread(locked)
        finally:
            waiting[0] -= 1

    async def read_body(request) -> tuple[bytes, int]:
        data, size = b"", 0
        async for chunk in request.stream():  # read to the end even when too large, so that the client
            size += len(chunk)                # gets the 413 rather than a broken pipe (up to DRAIN bytes)
            if size <= MAX_BODY:
                data += chunk
            elif size > DRAIN:
                break
        return data, size

    async def body(request, allowed: dict) -> dict:
        try:  # a client that sends half a body and waits must not hold a connection for ever
            data, size = await asyncio.wait_for(read_body(request), BODY_SECONDS)
        except asyncio.TimeoutError:
            raise BadRequest(f"the request body did not arrive within {BODY_SECONDS} s", 408) from None
        if size > MAX_BODY:
            raise BadRequest(f"the request body is over {MAX_BODY:,} bytes", 413)
        try:
            value = json.loads(data or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise BadRequest(f"the body is not valid JSON ({getattr(e, 'msg', e)})") from None
        except RecursionError:  # [[[[…]]]] 100,000 deep: the parser recurses once a level
            raise BadRequest("the body is JSON nested too deeply") from None
        except ValueError as e:  # an integer of more than 4,300 digits
            raise BadRequest(f"the body holds a value JSON cannot read here ({str(e)[:80]})") from None
        if not isinstance(value, dict):
            raise BadRequest("the body must be a JSON object")
        for key, v in value.items():
            if key not in allowed:
                raise BadRequest(f"unknown field {key!r} (allowed: {', '.join(allowed)})")
            if v is not None and not _is(v, allowed[key]):
                raise BadRequest(f"field {key!r} must be {allowed[key].__name__ if allowed[key] is not int else 'an integer'}, "
                                 f"got {type(v).__name__}")
        return value

    def position_of(value) -> int:
        T = len(explorer.tokens)
        position = value.get("position")
        if position is None:
            return T - 1
        if not -T <= position < T:
            raise BadRequest(f"position {position} is out of range: the prompt has {T} tokens (0 … {T - 1})")
        return position % T

    def answer(position: int) -> dict:
        t, a = explorer.trace, explorer.args
        return {"tokens": state.token_list(tokenizer, explorer.tokens), "position": position,
                "steps": state.step_values(t, a, position), "residual_rms": state.residual_rms(t, a, position),
                "logit_lens": state.lens_rows(t, explorer.weights, a, tokenizer, position),
                "top": state.top_tokens(t, tokenizer, position), "heads": state.habit_heads(t, a),
                "n_layers": a.n_layers, "n_heads": a.n_heads, "limit": explorer.limit()}

    async def model_info(request):
        a = checkpoint.args
        return JSONResponse({"name": Path(str(checkpoint.path)).name, "trained": trained, "n_layers": a.n_layers,
                             "n_heads": a.n_heads, "n_kv_heads": a.n_kv_heads, "dim": a.dim,
                             "vocab_size": a.vocab_size, "limit": explorer.limit()})

    async def run(request):
        value = await body(request, {"prompt": str, "position": int})
        prompt = value.get("prompt")
        if not prompt:
            raise BadRequest("field 'prompt' is required: the text to run")
        if len(prompt) > MAX_PROMPT_CHARS:
            raise BadRequest(f"the prompt is {len(prompt):,} characters; at most {MAX_PROMPT_CHARS:,}")
        tokens = tokenizer.encode(prompt, bos=True, eos=False)
        if not tokens:
            raise BadRequest("the prompt encodes to no tokens at all (every byte of it is one the vocabulary lacks)")
        if len(tokens) > explorer.limit():
            raise BadRequest(f"the prompt is {len(tokens)} tokens; this explorer takes at most {explorer.limit()}")

        def work():
            explorer.run(tokens)
            return answer(position_of(value))
        return JSONResponse(await compute(work))

    async def append(request):
        value = await body(request, {"token": int, "position": int})
        token = value.get("token")
        if token is not None and not 0 <= token < checkpoint.args.vocab_size:
            raise BadRequest(f"token {token} is out of range: the vocabulary has {checkpoint.args.vocab_size:,}")

        def work():  # checked under the lock: two appends at once must not both pass the limit
            if not explorer.tokens:
                raise BadRequest("nothing to append to: run a prompt first", 409)
            if len(explorer.tokens) >= explorer.limit():
                raise BadRequest(f"the prompt has reached {explorer.limit()} tokens, this explorer's limit")
            explorer.append(int(explorer.trace["next_token"]) if token is None else token)
            return answer(position_of({"position": value.get("position")}))
        return JSONResponse(await compute(work))

    async def position(request):
        value = await body(request, {"position": int})
        if not explorer.tokens:
            raise BadRequest("no prompt yet: run one first", 409)
        if value.get("position") is None:
            raise BadRequest("field 'position' is required")
        return JSONResponse(await compute(lambda: answer(position_of(value))))

    async def attention(request):
        if not explorer.tokens:
            raise BadRequest("no prompt yet: run one first", 409)
        layer = _int_query(request, "layer", explorer.args.n_layers)
        head = _int_query(request, "head", explorer.args.n_heads)
        return JSONResponse(await compute(lambda: state.head_matrices(explorer.trace, layer, head)))

    async def index(request):
        return FileResponse(STATIC / "index.html")

    async def bad_request(request, exc: BadRequest):
        # after a 408 the rest of the body may still come: close rather than read it as the next request
        headers = {"connection": "close"} if exc.status == 408 else None
        return JSONResponse({"error": str(exc)}, status_code=exc.status, headers=headers)

    async def not_found(request, exc):
        status = getattr(exc, "status_code", 404)
        return JSONResponse({"error": f"{request.url.path}: {getattr(exc, 'detail', 'not found')}"}, status_code=status)

    async def gone(request, exc):  # the client hung up mid-request: nobody to answer, nothing to log
        return Response(status_code=499)

    async def unexpected(request, exc):  # a bug of ours: say so in one line, keep serving
        return JSONResponse({"error": f"internal error: {type(exc).__name__}: {exc}"}, status_code=500)

    routes = [Route("/", index), Route("/api/model", model_info), Route("/api/run", run, methods=["POST"]),
              Route("/api/append", append, methods=["POST"]), Route("/api/position", position, methods=["POST"]),
              Route("/api/attention", attention), Mount("/static", StaticFiles(directory=STATIC))]
    if SITE.is_dir():  # the docs site, when it has been built (mkdocs build): the steps link to their pages
        routes.append(Mount("/docs", StaticFiles(directory=SITE, html=True)))
    return Starlette(routes=routes, exception_handlers={BadRequest: bad_request, 404: not_found, 405: not_found,
                                                        ClientDisconnect: gone, Exception: unexpected})


def _is(value, kind) -> bool:
    return is_int(value) if kind is int else isinstance(value, kind)


def _int_query(request, name: str, size: int) -> int:
    """An integer query parameter, strictly: ASCII digits, at most 9 of them (no '²', '--1' or 5,000 digits)."""
    raw = request.query_params.get(name)
    if raw is None or not re.fullmatch(r"-?[0-9]{1,9}", raw):
        raise BadRequest(f"query parameter {name!r} must be an integer, got {shown(repr(raw), 40)}")
    value = int(raw)
    if not 0 <= value < size:
        raise BadRequest(f"{name} {value} is out of range (0 … {size - 1})")
    return value


def serve(checkpoint, trained: bool, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Start the explorer and block until Ctrl-C."""
    import uvicorn

    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: serving on {host}: anyone who can reach this address can use the explorer "
              f"(it has no authentication)")
    config = uvicorn.Config(create_app(checkpoint, trained), host=host, port=port, log_level="warning")
    server = uvicorn.Server(config)
    print(f"the explorer is at http://{host if ':' not in host else f'[{host}]'}:{port}/  (Ctrl-C stops it)", flush=True)
    try:
        server.run()
    except OSError as e:
        raise InputError(f"cannot serve on {host}:{port} ({e.strerror or e})") from None
