"""How live the explorer feels: `python bench/explorer.py` times /api/run on a 64-token prompt
and /api/append, over real HTTP on the built-in trained model (median and min of several runs),
and the size of each answer. Goals (issue #18): run ≤ 300 ms, append ≤ 100 ms, answers < 1 MB."""

from __future__ import annotations

import json
import socket
import statistics
import threading
import time
import urllib.request

RUNS = 7


def main() -> None:
    import uvicorn

    from reference.formats import load_checkpoint
    from reference.formats.hub import resolve_checkpoint
    from reference.explorer.server import create_app

    ckpt = load_checkpoint(resolve_checkpoint("smollm2-135m"))
    prompt = ckpt.tokenizer.decode(ckpt.tokenizer.encode("the answer to the ultimate question of life " * 12,
                                                         bos=False, eos=False)[:64])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(ckpt, True), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"

    def post(path, body):
        request = urllib.request.Request(url + path, json.dumps(body).encode(), {"Content-Type": "application/json"})
        start = time.perf_counter()
        with urllib.request.urlopen(request) as response:
            data = response.read()
        return time.perf_counter() - start, data

    def get(path):
        start = time.perf_counter()
        with urllib.request.urlopen(url + path) as response:
            data = response.read()
        return time.perf_counter() - start, data

    post("/api/run", {"prompt": prompt})  # warm-up: the first use dequantizes nothing new, but fills caches
    rows = []
    for name, call in (("run, 64 tokens", lambda: post("/api/run", {"prompt": prompt})),
                       ("append one token", lambda: post("/api/append", {})),
                       ("one head's [T, T]", lambda: get("/api/attention?layer=10&head=3"))):
        times, size = [], 0
        for _ in range(RUNS):
            if name.startswith("append"):
                post("/api/run", {"prompt": prompt})
            seconds, data = call()
            times.append(seconds)
            size = len(data)
        rows.append((name, statistics.median(times), min(times), size))
    tokens = len(json.loads(post("/api/run", {"prompt": prompt})[1])["tokens"])
    print(f"explorer on smollm2-135m, {tokens}-token prompt, {RUNS} runs each")
    print("| request | median | min | answer |")
    print("| --- | --- | --- | --- |")
    for name, median, fastest, size in rows:
        print(f"| {name} | {median * 1000:.0f} ms | {fastest * 1000:.0f} ms | {size / 1024:.1f} KiB |")
    server.should_exit = True


if __name__ == "__main__":
    main()
