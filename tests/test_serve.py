"""`python -m reference serve`: the explorer's API over real HTTP, and its page in headless Chromium.

The server is the real one (uvicorn, on a free port, in a thread of this process) on the
built-in trained model; every bad input of the issue gets a 4xx with a JSON error, and the
server keeps answering after each.
"""

import json
import os
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest

from test_docs import browser, chromium  # noqa: F401 - the browser fixtures, shared with the docs test

pytest.importorskip("starlette", reason="serve needs the serve extra: pip install -e '.[serve]'")
pytest.importorskip("uvicorn", reason="serve needs the serve extra: pip install -e '.[serve]'")

CAPITAL = "The capital of France is"


@pytest.fixture(scope="module")
def server(smollm2):
    import uvicorn

    from reference.explorer.server import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(create_app(smollm2, trained=True), host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(200):
        if srv.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


def call(url, path, body=None, raw=None, method=None):
    """(status, JSON answer) of one request."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url + path, data=data, method=method or ("POST" if data is not None else "GET"),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_the_top_token_after_the_capital_of_france_is_transformers_top_token(server, smollm2, smollm2_hf):
    import torch

    status, answer = call(server, "/api/run", {"prompt": CAPITAL})
    assert status == 200
    ids = smollm2.tokenizer.encode(CAPITAL, bos=True, eos=False)
    with torch.no_grad():
        theirs = int(smollm2_hf(torch.tensor([ids])).logits[0, -1].argmax())
    assert [t["id"] for t in answer["tokens"]] == ids
    assert answer["top"][0]["id"] == theirs and answer["top"][0]["text"] == " Paris"
    assert len(answer["top"]) == 10 and answer["top"][0]["p"] >= answer["top"][1]["p"]
    assert len(answer["logit_lens"]) == smollm2.args.n_layers and answer["logit_lens"][-1]["text"] == " Paris"
    assert len(answer["residual_rms"]) == smollm2.args.n_layers + 1


def test_a_run_answer_has_every_step_with_the_8b_shape_and_stays_small(server):
    status, answer = call(server, "/api/run", {"prompt": "word " * 60, "position": 3})
    assert status == 200 and answer["position"] == 3
    names = [s["name"] for s in answer["steps"]]
    assert names[:3] == ["tokens", "embeddings", "freqs_cis"] and "layers.0.q_rotated" in names and names[-1] == "logits"
    q = next(s for s in answer["steps"] if s["name"] == "layers.0.q")
    assert q["shape"][0] == 9 and q["shape_8b"][0] == 32 and q["page"] == "qkv"
    assert len(json.dumps(answer)) < 1_000_000


def test_append_extends_by_the_top_token_and_equals_running_the_longer_prompt(server, smollm2):
    _, first = call(server, "/api/run", {"prompt": CAPITAL})
    status, appended = call(server, "/api/append", {})
    assert status == 200
    assert [t["id"] for t in appended["tokens"]] == [t["id"] for t in first["tokens"]] + [first["top"][0]["id"]]
    _, attention_cached = call(server, "/api/attention?layer=5&head=2")
    _, whole = call(server, "/api/run", {"prompt": CAPITAL + " Paris"})
    _, attention_whole = call(server, "/api/attention?layer=5&head=2")
    assert [t["id"] for t in whole["tokens"]] == [t["id"] for t in appended["tokens"]]
    assert [t["id"] for t in appended["top"]] == [t["id"] for t in whole["top"]]
    for a, b in zip(appended["top"], whole["top"]):
        assert a["p"] == pytest.approx(b["p"], abs=2e-4)
    for row_a, row_b in zip(attention_cached["attention_weights"], attention_whole["attention_weights"]):
        assert row_a == pytest.approx(row_b, abs=2e-4)


def test_a_head_comes_on_demand_with_masked_scores_as_null(server):
    call(server, "/api/run", {"prompt": CAPITAL})
    status, m = call(server, "/api/attention?layer=0&head=0")
    assert status == 200 and len(m["scores"]) == 5 and m["scores"][0][1] is None
    assert all(abs(sum(row) - 1) < 1e-3 for row in m["attention_weights"])


@pytest.mark.parametrize("path, body, raw, status, says", [
    ("/api/run", None, b"{not json", 400, "not valid JSON"),
    ("/api/run", None, b"[1, 2]", 400, "JSON object"),
    ("/api/run", {"prompt": "x", "colour": "red"}, None, 400, "unknown field 'colour'"),
    ("/api/run", {"prompt": 42}, None, 400, "'prompt' must be str"),
    ("/api/run", {"prompt": "x", "position": True}, None, 400, "'position' must be an integer"),
    ("/api/run", {"prompt": ""}, None, 400, "'prompt' is required"),
    ("/api/run", {"prompt": "word " * 400}, None, 400, "at most 256"),
    ("/api/run", {"prompt": "abc", "position": 3}, None, 400, "position 3 is out of range"),
    ("/api/run", None, b'{"prompt": "' + b"a" * (1 << 20) + b'"}', 413, "over 1,048,576 bytes"),
    ("/api/append", {"token": 10 ** 6}, None, 400, "token 1000000 is out of range"),
    ("/api/attention?layer=30&head=0", None, None, 400, "layer 30 is out of range"),
    ("/api/attention?layer=0&head=x", None, None, 400, "'head' must be an integer"),
    ("/api/attention?layer=%C2%B2&head=0", None, None, 400, "'layer' must be an integer"),  # '²' is a digit to isdigit
    ("/api/attention?layer=--1&head=0", None, None, 400, "'layer' must be an integer"),
    ("/api/attention?layer=" + "9" * 5000 + "&head=0", None, None, 400, "'layer' must be an integer"),
    ("/api/run", None, b"[" * 100_000 + b"]" * 100_000, 400, "nested too deeply"),
    ("/api/run", None, b'{"prompt": "x", "position": ' + b"9" * 5000 + b"}", 400, "JSON cannot read"),
    ("/api/run", {"prompt": "\x04\x04"}, None, 400, "encodes to no tokens"),  # bytes SmolLM2 lacks, no BOS
    ("/static/../serve.py", None, None, 404, "not found"),
    ("/nowhere", None, None, 404, "not found"),
])
def test_bad_input_is_a_4xx_with_a_json_error_and_the_server_keeps_answering(server, path, body, raw, status, says):
    call(server, "/api/run", {"prompt": CAPITAL})
    got, answer = call(server, path, body, raw)
    assert got == status and says.lower() in answer["error"].lower(), answer
    assert call(server, "/api/run", {"prompt": CAPITAL})[1]["top"][0]["text"] == " Paris"


def test_concurrent_runs_are_served_one_at_a_time_or_told_to_wait(server):
    results = []

    def one(i):
        results.append(call(server, "/api/run", {"prompt": f"{CAPITAL} {i}"})[0])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(results) <= {200, 503} and 200 in results
    assert call(server, "/api/run", {"prompt": CAPITAL})[0] == 200


def test_the_page_runs_a_prompt_shows_paris_draws_attention_and_appends(server, browser, tmp_path):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server + "/")
    wait = WebDriverWait(browser, 60)
    wait.until(lambda b: "trained weights" in b.find_element(By.ID, "model").text)
    box = browser.find_element(By.ID, "prompt")
    box.clear()
    box.send_keys(CAPITAL)
    browser.find_element(By.ID, "run").click()
    wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#top-tokens li"))
    assert browser.find_elements(By.CSS_SELECTOR, "#top-tokens li")[0].text.startswith("␣Paris")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#tokens .chip")) == 5
    assert len(browser.find_elements(By.CSS_SELECTOR, "#logit-lens tbody tr")) == 30
    wait.until(lambda b: b.find_element(By.ID, "attention").get_attribute("data-drawn"))
    painted = browser.execute_script("""const c = document.getElementById('weights-canvas');
        return c.getContext('2d').getImageData(0, 0, c.width, c.height).data.some((v, i) => i % 4 === 3 && v > 0);""")
    assert painted
    browser.find_element(By.ID, "append").click()
    wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#tokens .chip")) == 6)
    save_screenshot(browser, tmp_path / "explorer.png")
    # a prompt over the cap: the error shows in the page, and the next run works
    browser.execute_script("document.getElementById('prompt').value = 'word '.repeat(400);")
    browser.find_element(By.ID, "run").click()
    wait.until(lambda b: b.find_element(By.ID, "error").is_displayed())
    assert "at most 256" in browser.find_element(By.ID, "error").text
    box.clear()
    box.send_keys(CAPITAL)
    browser.find_element(By.ID, "run").click()
    wait.until(lambda b: not b.find_element(By.ID, "error").is_displayed())
    wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#tokens .chip")) == 5)


def save_screenshot(driver, path):
    """The page as the test sees it; with $LLAMA3_REFERENCE_SCREENSHOT=docs/explorer.png also the
    docs page's picture: the top of the page, the attention heatmap and the logit lens, stacked,
    in 256 colours."""
    driver.save_screenshot(str(path))
    target = os.environ.get("LLAMA3_REFERENCE_SCREENSHOT")
    if target:
        import io

        from PIL import Image
        from selenium.webdriver.common.by import By

        top = Image.open(path).convert("RGB")
        parts = [top.crop((0, 0, top.width, 620))]
        for element in ("attention", "logit-lens"):
            part = Image.open(io.BytesIO(driver.find_element(By.ID, element).screenshot_as_png)).convert("RGB")
            parts.append(part)
        width = max(p.width for p in parts)
        sheet = Image.new("RGB", (width, sum(p.height + 16 for p in parts)), "white")
        y = 0
        for part in parts:
            sheet.paste(part, ((width - part.width) // 2, y))
            y += part.height + 16
        sheet.quantize(256).save(target, optimize=True)


def raw_request(url: str, head: bytes, body: bytes, wait: float) -> bytes:
    """Send a request whose body stops short of its Content-Length; what came back within `wait`."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=wait + 5) as s:
        s.sendall(head + body)
        answer = b""
        try:  # the head and the body may come in separate packets: read until the server closes
            while chunk := s.recv(4096):
                answer += chunk
        except (socket.timeout, ConnectionResetError):
            pass
        return answer


def test_a_body_that_never_finishes_is_timed_out_with_a_408(server, monkeypatch):
    from reference.explorer import server as module

    monkeypatch.setattr(module, "BODY_SECONDS", 1)
    head = (b"POST /api/run HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n")
    start = time.monotonic()
    answer = raw_request(server, head, b'{"prompt": "The', wait=5)
    assert answer.startswith(b"HTTP/1.1 408") and b"did not arrive within 1 s" in answer, answer[:200]
    assert time.monotonic() - start < 5
    assert call(server, "/api/run", {"prompt": CAPITAL})[1]["top"][0]["text"] == " Paris"


def test_a_client_that_hangs_up_mid_body_leaves_no_traceback_and_the_server_answering(server, capfd):
    head = (b"POST /api/run HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n")
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as s:
        s.sendall(head + b'{"prompt": ')
    time.sleep(0.5)
    assert call(server, "/api/run", {"prompt": CAPITAL})[1]["top"][0]["text"] == " Paris"
    assert "Traceback" not in capfd.readouterr().err
