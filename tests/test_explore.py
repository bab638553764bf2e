"""`gan-recipes explore`: the server over real HTTP on a free port, with tiny generators saved by save_generator."""

from __future__ import annotations

import builtins
import http.client
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from PIL import Image
from conftest import assert_user_error, gan_recipes, saved_generator

from gan_infogan_plugin import LatentCodeSpec
from gan_infogan_plugin.errors import UserError
from gan_infogan_plugin.explore import Explorer, ExploreServer, load_runs
from gan_infogan_plugin.export import load_generator

SPEC = LatentCodeSpec.parse("noise:4,cat:3,cont:2")  # codes c1 (3 classes), c2, c3
VALUES = torch.linspace(-2, 2, 9).tolist()


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> list[Path]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("explore")
    first = root / "first"
    saved_generator(first / "generator.safetensors", str(SPEC), step=7)
    return [first, saved_generator(root / "other" / "g.safetensors", "noise:4,cont:1", seed=1)]


@pytest.fixture(scope="module")
def server(runs):
    server = ExploreServer(Explorer(load_runs(runs)), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def get(server, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=30)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def raw(server, request: bytes) -> bytes:
    """Send bytes as they are (no client-side URL clean-up) and return the whole answer."""
    with socket.create_connection(("127.0.0.1", server.server_port), timeout=30) as s:
        s.sendall(request)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def pixels(body: bytes) -> torch.Tensor:
    with Image.open(io.BytesIO(body)) as image:
        assert image.format == "PNG"
        return torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8).reshape(image.height, image.width)


def expected(generator_file: Path, seed: int, fixed: dict[str, float]) -> torch.Tensor:
    """What the page should show: LoadedGenerator.generate with every code fixed, as 8-bit grey."""
    images = load_generator(generator_file).generate(1, fixed=fixed, seed=seed)
    return ((images[0, 0].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def test_runs_are_described(server):
    status, headers, body = get(server, "/api/runs")
    assert status == 200 and headers["Content-Type"] == "application/json"
    first, second = json.loads(body)["runs"]
    assert (first["name"], first["step"], first["width"], first["height"], first["channels"]) == ("first", 7, 28, 28, 1)
    assert [(c["name"], c["kind"]) for c in first["codes"]] == [("c1", "cat"), ("c2", "cont"), ("c3", "cont")]
    assert first["codes"][0]["classes"] == 3 and first["codes"][1]["range"] == [-2, 2]
    assert first["codes"][1]["values"] == pytest.approx(VALUES)
    assert second["name"] == "g" and [c["name"] for c in second["codes"]] == ["c1"]


def test_the_page_and_its_files_come_from_the_package(server):
    status, headers, page = get(server, "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    local = re.findall(rb'(?:src|href)="([^"#]+)"', page)
    assert local and all(ref.startswith(b"/static/") for ref in local)  # nothing from the internet
    for ref in local:
        assert get(server, ref.decode())[0] == 200


def test_image_is_the_generator_at_these_codes_and_seed(server, runs):
    status, headers, body = get(server, "/api/image?run=0&seed=5&c1=2&c2=1.5&c3=-0.25")
    assert status == 200 and headers["Content-Type"] == "image/png" and headers["Cache-Control"] == "no-store"
    image = pixels(body)
    assert image.shape == (28, 28)
    assert torch.equal(image, expected(runs[0] / "generator.safetensors", 5, {"c1": 2, "c2": 1.5, "c3": -0.25}))
    assert not torch.equal(image, pixels(get(server, "/api/image?run=0&seed=5&c1=2&c2=-1.5&c3=-0.25")[2]))
    assert not torch.equal(image, pixels(get(server, "/api/image?run=0&seed=6&c1=2&c2=1.5&c3=-0.25")[2]))
    # codes left out take 0; the second run has its own codes
    assert torch.equal(pixels(get(server, "/api/image?seed=3")[2]),
                       expected(runs[0] / "generator.safetensors", 3, {"c1": 0, "c2": 0, "c3": 0}))
    assert torch.equal(pixels(get(server, "/api/image?run=1&seed=3&c1=1")[2]), expected(runs[1], 3, {"c1": 1}))


def test_strips_share_the_noise_and_the_other_codes(server):
    query = "seed=11&c1=1&c2=0.5&c3=-1"
    strip = pixels(get(server, f"/api/strip?{query}&code=c3")[2])
    assert strip.shape == (28, 9 * 28)  # 9 values of a continuous code, no padding
    for i in (0, 4, 8):
        cell = pixels(get(server, f"/api/image?seed=11&c1=1&c2=0.5&c3={VALUES[i]}")[2])
        assert torch.equal(strip[:, 28 * i:28 * (i + 1)], cell), i
    classes = pixels(get(server, f"/api/strip?{query}&code=c1")[2])
    assert classes.shape == (28, 3 * 28)
    assert torch.equal(classes[:, 56:84], pixels(get(server, "/api/image?seed=11&c1=2&c2=0.5&c3=-1")[2]))


def test_grid_scale_and_download(server):
    status, headers, body = get(server, "/api/grid?seed=1&c2=0.3&download=1")
    assert status == 200 and "Content-Disposition" in headers
    assert headers["Content-Disposition"] == 'attachment; filename="first-seed1-grid.png"'
    assert pixels(body).shape == (3 * 30 + 2, 9 * 30 + 2)  # a row per code, 9 columns, 2 pixels of padding
    scaled = pixels(get(server, "/api/image?seed=1&scale=3")[2])
    assert scaled.shape == (84, 84)
    assert torch.equal(scaled[::3, ::3], pixels(get(server, "/api/image?seed=1")[2]))


@pytest.mark.parametrize("query, reason", [
    ("c2=2.5", "c2='2.5': expected a number in [-2, 2]"),
    ("c2=nan", "c2='nan'"),
    ("c2=inf", "c2='inf'"),
    ("c2=abc", "c2='abc'"),
    ("c1=3", "c1='3': expected a whole number 0..2"),
    ("c1=1.5", "c1='1.5'"),
    ("c1=-1", "c1='-1'"),
    ("c9=1", "unknown parameter 'c9'"),
    ("seed=4294967296", "seed='4294967296': expected a whole number 0..4294967295"),
    ("seed=" + "9" * 5000, "query string longer than 2000"),
    ("seed=-1", "seed='-1'"),
    ("seed=", "seed=''"),
    ("seed=1&seed=2", "seed is given 2 times"),
    ("run=2", "run='2': expected a whole number 0..1"),
    ("scale=0", "scale='0'"),
    ("scale=17", "scale='17'"),
    ("download=yes", "download='yes'"),
    ("c2", "malformed query string"),
    ("%ff=1", "malformed query string"),
    ("c2=0.5&&", "malformed query string"),
])
def test_bad_requests_get_400_and_one_line(server, query, reason):
    status, headers, body = get(server, f"/api/image?{query}")
    assert status == 400 and headers["Content-Type"].startswith("text/plain")
    text = body.decode()
    assert text.endswith("\n") and "\n" not in text.rstrip("\n") and "Traceback" not in text
    assert text.startswith("bad request: ") and reason in text, text


def test_strip_needs_a_code_of_the_run(server):
    assert get(server, "/api/strip?seed=1")[0] == 400
    status, _, body = get(server, "/api/strip?code=c4")
    assert status == 400 and b"run 'first' has codes c1, c2, c3" in body
    assert get(server, "/api/strip?run=1&code=c1")[0] == 200


@pytest.mark.parametrize("path", [
    "/static/../../../../etc/passwd", "/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/static/..%2fexplore.py",
    "/../../etc/passwd", "//etc/passwd", "/static/", "/static/explore.py", "/api/../explore.py", "/first/generator.safetensors",
])
def test_no_path_reaches_the_file_system(server, path):
    answer = raw(server, f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 404 ")
    assert b"root:" not in answer and b"import" not in answer and len(answer) < 1000


def test_requests_open_no_file(server, monkeypatch):
    """Every request kind is answered from memory: open() fails while they run."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"the server opened {args[:1]}")

    monkeypatch.setattr(builtins, "open", refuse)
    monkeypatch.setattr(io, "open", refuse)
    for path in ("/", "/static/app.js", "/static/style.css", "/api/runs", "/api/image?c2=1", "/api/strip?code=c2",
                 "/api/grid?download=1"):
        assert get(server, path)[0] == 200, path


def test_malformed_requests_and_other_methods(server):
    for request in (b"NONSENSE\r\n\r\n", b"GET / HTTP/1.1 more\r\n\r\n", b"GET /api/runs HTTP/9\r\n\r\n"):
        assert raw(server, request).startswith(b"400 Bad request"), request  # answered HTTP/0.9 style: no headers
    post = raw(server, b"POST /api/image HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    assert post.startswith(b"HTTP/1.1 501 ")
    status, _, body = get(server, "/api/runs", {"Host": "attacker.example:80"})  # DNS rebinding
    assert status == 400 and b"Host" in body
    assert get(server, "/api/runs", {"Host": f"localhost:{server.server_port}"})[0] == 200
    assert get(server, "/api/image?c2=1")[0] == 200  # still serving


def test_bad_runs_and_a_busy_port_are_user_errors(runs, tmp_path):
    with pytest.raises(UserError, match="no generator.safetensors in this run folder"):
        load_runs([tmp_path])
    with pytest.raises(UserError, match="no such file"):
        load_runs([tmp_path / "absent.safetensors"])
    explorer = Explorer(load_runs(runs[:1]))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(UserError, match=f"--port {busy.getsockname()[1]}: cannot listen there"):
            ExploreServer(explorer, "127.0.0.1", busy.getsockname()[1])
    assert_user_error(gan_recipes("explore", tmp_path), "no generator.safetensors in this run folder")


def test_closing_the_server_ends_idle_keep_alive_connections_and_joins_their_threads(runs):
    """A browser's idle keep-alive connection must not hold the stop for the handler's 120 s timeout,
    and no handler thread may outlive server_close (daemon threads that had run torch aborted the
    process at exit on a loaded machine)."""
    server = ExploreServer(Explorer(load_runs(runs)), "127.0.0.1", 0)
    before = set(threading.enumerate())
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=30)
    connection.request("GET", "/api/image?run=1&c1=-2")
    assert connection.getresponse().read().startswith(b"\x89PNG")  # the connection stays open (keep-alive)
    handlers = [t for t in threading.enumerate() if t not in before and t is not serving]
    assert handlers and not any(t.daemon for t in handlers)
    server.shutdown()
    closing = threading.Thread(target=server.server_close, daemon=True)
    closing.start()
    closing.join(30)
    assert not closing.is_alive(), "server_close waited on the idle connection"
    assert not any(t.is_alive() for t in handlers)
    connection.close()


def test_cli_prints_the_url_and_stops_on_ctrl_c(runs):
    """The real command in its own process: the URL it prints answers; SIGINT ends it with status 0, also
    when it was started with SIGINT ignored, as a shell starts a background job (`&`)."""
    # PYTHONFAULTHANDLER: if it does not stop, SIGABRT makes it print every thread's stack for the report.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "PYTHONFAULTHANDLER": "1"}
    background = "import signal; signal.signal(signal.SIGINT, signal.SIG_IGN); "
    process = subprocess.Popen([sys.executable, "-c", background + "from gan_infogan_plugin.cli import main; main()", "explore",
                                str(runs[0]), str(runs[1])],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = process.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert url and "first, g" in line, line + process.stderr.read()
        connection = http.client.HTTPConnection("127.0.0.1", int(url.group(1)), timeout=30)
        connection.request("GET", "/api/image?run=1&c1=-2")
        response = connection.getresponse()
        assert response.status == 200 and response.read().startswith(b"\x89PNG")
        connection.close()
        process.send_signal(signal.SIGINT)
        try:
            out, err = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGABRT)
            pytest.fail("explore did not stop within 30 s of SIGINT; its threads:\n" + process.communicate()[1][-6000:])
    finally:
        process.kill() if process.poll() is None else None
    assert process.returncode == 0, err
    assert out.strip() == "stopped" and "Traceback" not in err
