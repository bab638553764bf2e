"""``gan-recipes explore``: turn a trained generator's codes in the browser.

One page (the files in ``explore_static/``, shipped in the package: no script or font from the
internet) and PNG images drawn on request by a server from the standard library
(``http.server.ThreadingHTTPServer``: one person's small GET requests need nothing more)::

    GET /                        the page
    GET /static/<name>           its script and style sheet (only the files shipped in explore_static/)
    GET /api/runs                JSON: per run its name, step, image size and codes
    GET /api/image?QUERY         one image (C, H, W) as PNG
    GET /api/strip?QUERY&code=c2 that code's traversal for this noise and these codes: one row, no padding
    GET /api/grid?QUERY          every code's strip, one row per code (a download)

    QUERY: run=0 (default 0), seed=S (0..MAX_SEED, default 0), one value per code (c1=3&c2=0.5;
    a code left out takes class 0 or value 0), scale=K (1..MAX_SCALE, default 1: each pixel drawn
    K x K), download=1 (sent as a file to save)

The noise is the seed's: an image is ``G(spec.sample(1, seeded, fixed=every code))``, so a strip
shares the noise and the other codes of the image beside it. Continuous codes take values in
[-2, 2] (the traversals' range), categorical codes a class 0..k-1. A request that does not fit
gets 400 and one line saying why; no part of a request names a file.
"""

from __future__ import annotations

import io
import ipaddress
import json
import math
import re
import signal
import socket
import sys
import threading
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import torch
from PIL import Image

from .codes import CategoricalCode
from .errors import UserError, one_line
from .export import LoadedGenerator, load_generator
from .images import grid_image
from .runs import RunDir, generator_file_of
from .signals import stop_signals_to

MAX_SEED = 2**32 - 1
MAX_SCALE = 16
CODE_RANGE = (-2.0, 2.0)  # continuous codes, as LatentCodeSpec.traverse_values
STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
CSP = "default-src 'self'; img-src 'self' blob:; object-src 'none'; base-uri 'none'; form-action 'none'"
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


class BadRequest(Exception):
    """A request that does not fit: answered with 400 and this one-line message."""


@dataclass
class ExploreRun:
    """One generator on the page: ``name`` as the selector shows it, ``shape`` (C, H, W) of its images."""

    name: str
    loaded: LoadedGenerator
    shape: tuple[int, int, int]


@dataclass(frozen=True)
class Query:
    """A parsed image request: every code of the run has a value (classes as whole floats)."""

    run: ExploreRun
    seed: int
    values: dict[str, float]
    code: str | None
    scale: int
    download: bool


def load_runs(paths: list[Path], device: str = "cpu") -> list[ExploreRun]:
    """Each path is a run folder (its generator.safetensors) or a generator file; names are made unique."""
    if not paths:
        raise UserError("give at least one run folder or generator.safetensors file")
    runs: list[ExploreRun] = []
    for path in paths:
        file = generator_file_of(path)
        loaded = load_generator(file, device=device)
        base = (file.parent.name if file == RunDir(file.parent).generator_file else file.stem) or str(file)
        name, taken, count = base, {run.name for run in runs}, 1
        while name in taken:
            count += 1
            name = f"{base} ({count})"
        shape = tuple(draw(loaded, 0, [{}]).shape[1:])  # one image: its size, and the first forward out of the way
        runs.append(ExploreRun(name, loaded, shape))  # type: ignore[arg-type]
    return runs


@torch.no_grad()
def draw(loaded: LoadedGenerator, seed: int, settings: list[dict[str, float]]) -> torch.Tensor:
    """One image per entry of ``settings`` (codes fixed to those values, the others drawn), all from
    the same noise, the seed's: (len(settings), C, H, W) in [-1, 1]."""
    rows = [loaded.spec.sample(1, device=loaded.device, fixed=fixed,
                               generator=torch.Generator(device=loaded.device).manual_seed(seed)).flat
            for fixed in settings]
    generator = loaded.generator
    return generator(torch.cat(rows).to(next(generator.parameters()).dtype))


def _png(images: torch.Tensor, nrow: int, padding: int, scale: int) -> bytes:
    picture = grid_image(images, nrow=nrow, padding=padding)
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.NEAREST)
    out = io.BytesIO()
    picture.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def _integer(key: str, text: str, low: int, high: int) -> int:
    if not re.fullmatch(r"[0-9]{1,20}", text) or not low <= int(text) <= high:
        raise BadRequest(f"{key}={text[:40]!r}: expected a whole number {low}..{high}")
    return int(text)


class Explorer:
    """The runs and their drawing: query parameters in, JSON or PNG bytes out (no HTTP here).

    One lock serialises the generators' forward passes: torch already spreads one over the cores.
    """

    def __init__(self, runs: list[ExploreRun]) -> None:
        self.runs = runs
        self._lock = threading.Lock()

    def describe(self) -> dict[str, Any]:
        """What the page builds its controls from."""
        runs = []
        for i, run in enumerate(self.runs):
            spec = run.loaded.spec
            codes = [{"name": c.name, "kind": "cat", "classes": c.num_classes} if isinstance(c, CategoricalCode)
                     else {"name": c.name, "kind": "cont", "prior": c.prior, "range": list(CODE_RANGE),
                           "values": spec.traverse_values(c.name)}
                     for c in spec.codes]
            channels, height, width = run.shape
            runs.append({"id": i, "name": run.name, "step": run.loaded.step, "model": run.loaded.model_name,
                         "spec": str(spec), "channels": channels, "height": height, "width": width, "codes": codes})
        return {"runs": runs, "max_seed": MAX_SEED, "max_scale": MAX_SCALE}

    def parse(self, query: str, need_code: bool = False) -> Query:
        """Check every parameter of a query string; :class:`BadRequest` names the first one that does not fit."""
        if len(query) > 2000:
            raise BadRequest("query string longer than 2000 characters")
        try:
            params = parse_qs(query, keep_blank_values=True, strict_parsing=bool(query), max_num_fields=64,
                              errors="strict")
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest(f"malformed query string ({one_line(exc, 80)})") from None
        repeated = [key for key, values in params.items() if len(values) > 1]
        if repeated:
            raise BadRequest(f"{repeated[0]} is given {len(params[repeated[0]])} times; give it once")
        given = {key: values[0] for key, values in params.items()}
        run_index = _integer("run", given.pop("run", "0"), 0, len(self.runs) - 1)
        run = self.runs[run_index]
        spec = run.loaded.spec
        seed = _integer("seed", given.pop("seed", "0"), 0, MAX_SEED)
        scale = _integer("scale", given.pop("scale", "1"), 1, MAX_SCALE)
        download = given.pop("download", "0")
        if download not in ("0", "1"):
            raise BadRequest(f"download={download[:40]!r}: expected 0 or 1")
        code = given.pop("code", None)
        if need_code and code is None:
            raise BadRequest(f"code missing: name the code to traverse, one of {', '.join(spec.names)}")
        if code is not None and code not in spec.names:
            raise BadRequest(f"code={code[:40]!r}: run {run.name!r} has codes {', '.join(spec.names) or '(none)'}")
        values: dict[str, float] = {}
        for c in spec.codes:
            text = given.pop(c.name, None)
            if text is None:
                values[c.name] = 0.0
            elif isinstance(c, CategoricalCode):
                values[c.name] = float(_integer(c.name, text, 0, c.num_classes - 1))
            else:
                try:
                    value = float(text) if len(text) <= 40 else math.nan
                except ValueError:
                    value = math.nan
                if not CODE_RANGE[0] <= value <= CODE_RANGE[1]:  # also refuses nan
                    raise BadRequest(f"{c.name}={text[:40]!r}: expected a number in [{CODE_RANGE[0]:g}, {CODE_RANGE[1]:g}]")
                values[c.name] = value
        if given:
            unknown = next(iter(given))
            raise BadRequest(f"unknown parameter {unknown[:40]!r}: run {run.name!r} takes run, seed, scale, download, "
                             f"code and its codes {', '.join(spec.names) or '(none)'}")
        return Query(run, seed, values, code, scale, download == "1")

    def _draw(self, query: Query, settings: list[dict[str, float]]) -> torch.Tensor:
        with self._lock:
            return draw(query.run.loaded, query.seed, settings).cpu()

    def image(self, query: Query) -> bytes:
        return _png(self._draw(query, [query.values]), nrow=1, padding=0, scale=query.scale)

    def _strip_settings(self, query: Query, code: str) -> list[dict[str, float]]:
        return [{**query.values, code: float(v)} for v in query.run.loaded.spec.traverse_values(code)]

    def strip(self, query: Query) -> bytes:
        """The traversal of ``query.code``: its values left to right, no padding (the page cuts it into cells)."""
        assert query.code is not None
        settings = self._strip_settings(query, query.code)
        return _png(self._draw(query, settings), nrow=len(settings), padding=0, scale=query.scale)

    def grid(self, query: Query) -> bytes:
        """Every code's strip, one row per code; shorter rows end in black."""
        names = query.run.loaded.spec.names
        if not names:
            return _png(self._draw(query, [query.values]), nrow=1, padding=2, scale=query.scale)
        rows = [self._strip_settings(query, name) for name in names]
        width = max(len(row) for row in rows)
        images = self._draw(query, [setting for row in rows for setting in row])
        blank = -torch.ones_like(images[:1])
        cells, start = [], 0
        for row in rows:
            cells += [images[start:start + len(row)], blank.expand(width - len(row), *blank.shape[1:])]
            start += len(row)
        return _png(torch.cat(cells), nrow=width, padding=2, scale=query.scale)


def _static_files() -> dict[str, tuple[bytes, str]]:
    """The page's files by name (read once from the package): no request ever reaches the file system."""
    folder = resources.files("gan_infogan_plugin") / "explore_static"
    files = {}
    for entry in folder.iterdir():
        suffix = Path(entry.name).suffix
        if entry.is_file() and suffix in STATIC_TYPES:
            files[entry.name] = (entry.read_bytes(), STATIC_TYPES[suffix])
    return files


class _Handler(BaseHTTPRequestHandler):
    """GET only; every answer has a length (keep-alive) and is never cached."""

    server: "ExploreServer"
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body leave at once: no 40 ms wait for a delayed ACK
    timeout = 120  # seconds an idle keep-alive connection keeps its thread
    server_version = "gan-recipes-explore"
    sys_version = ""
    error_content_type = "text/plain; charset=utf-8"
    error_message_format = "%(code)d %(message)s\n"

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Requests are not logged (a slider sends dozens a second); errors still are."""

    def _send(self, status: int, body: bytes, content_type: str, filename: str | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", CSP)
        if filename:
            self.send_header("Content-Disposition", f'attachment; filename="{filename}"')
        self.end_headers()
        self.wfile.write(body)

    def _text(self, status: int, message: str) -> None:
        self._send(status, (message + "\n").encode(), "text/plain; charset=utf-8")

    def _host_ok(self) -> bool:
        """On loopback, only a loopback Host header: another web site cannot reach the server by DNS rebinding."""
        if not self.server.loopback:
            return True
        host = (self.headers.get("Host") or "").strip().lower()
        name = host[1:host.find("]")] if host.startswith("[") else host.rsplit(":", 1)[0]
        return name in LOOPBACK_NAMES

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        try:
            self._get()
        except BadRequest as exc:
            self._text(HTTPStatus.BAD_REQUEST, f"bad request: {exc}")
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:  # a bug: one line to the page and to the terminal, the server goes on
            line = f"{type(exc).__name__}: {one_line(exc, 200)}"
            self.log_error("internal error on %s: %s", self.path[:200], line)
            self._text(HTTPStatus.INTERNAL_SERVER_ERROR, f"internal error: {line}")

    def _get(self) -> None:
        if not self._host_ok():
            raise BadRequest(f"Host {self.headers.get('Host', '')[:80]!r}: open the page as http://127.0.0.1:{self.server.server_port}/")
        url = urlsplit(self.path)
        explorer = self.server.explorer
        if url.path in ("/", "/index.html"):
            body, content_type = self.server.static["index.html"]
            self._send(HTTPStatus.OK, body, content_type)
        elif url.path.startswith("/static/") and url.path[len("/static/"):] in self.server.static:
            body, content_type = self.server.static[url.path[len("/static/"):]]
            self._send(HTTPStatus.OK, body, content_type)
        elif url.path == "/api/runs":
            self._send(HTTPStatus.OK, json.dumps(explorer.describe()).encode(), "application/json")
        elif url.path in ("/api/image", "/api/strip", "/api/grid"):
            kind = url.path[len("/api/"):]
            query = explorer.parse(url.query, need_code=kind == "strip")
            body = getattr(explorer, kind)(query)
            name = re.sub(r"[^A-Za-z0-9._-]+", "_", query.run.name)
            suffix = f"-{query.code}" if kind == "strip" else "-grid" if kind == "grid" else ""
            filename = f"{name}-seed{query.seed}{suffix}.png" if query.download else None
            self._send(HTTPStatus.OK, body, "image/png", filename)
        else:
            self._text(HTTPStatus.NOT_FOUND, f"not found: {url.path[:80]}")


class ExploreServer(ThreadingHTTPServer):
    """The HTTP server of :class:`Explorer`; ``url`` is where a browser on this machine finds the page."""

    # Handler threads are not daemons: on a loaded machine a daemon thread that had run torch and was
    # still waiting on its keep-alive connection at interpreter exit aborted the process after Ctrl-C
    # ("terminate called without an active exception", exit -6). server_close() instead ends every open
    # connection (so a waiting thread reads end-of-file at once) and joins the threads.
    daemon_threads = False
    block_on_close = True

    def __init__(self, explorer: Explorer, host: str = "127.0.0.1", port: int = 0) -> None:
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        try:
            family, _, _, _, address = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                           flags=socket.AI_PASSIVE)[0]
        except socket.gaierror as exc:
            raise UserError(f"--host {host}: not an address of this machine ({exc.strerror})") from None
        self.address_family = family
        try:
            super().__init__(address[:2], _Handler)
        except OSError as exc:
            raise UserError(f"--host {host} --port {port}: cannot listen there ({exc.strerror or exc}); "
                            "leave --port out for a free port") from None
        self.explorer = explorer
        self.static = _static_files()
        ip = ipaddress.ip_address(self.server_address[0])
        self.loopback = ip.is_loopback
        shown = ("127.0.0.1" if ip.version == 4 else "::1") if ip.is_unspecified else self.server_address[0]
        self.url = f"http://{'[' + shown + ']' if ':' in shown else shown}:{self.server_address[1]}/"

    def process_request(self, request: socket.socket, client_address) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def server_close(self) -> None:
        """Stop listening, end the open connections, and wait for their threads (a request being
        answered is finished first)."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:  # closed meanwhile
                pass
        super().server_close()


def serve(paths: list[Path], host: str = "127.0.0.1", port: int = 0, device: str = "cpu") -> None:
    """Load the runs, print the URL, answer requests until Ctrl-C (or SIGTERM), then close the port."""
    server = ExploreServer(Explorer(load_runs(paths, device)), host, port)
    if not server.loopback:
        print(f"warning: listening on {server.server_address[0]}: anyone who can reach this machine can use the page",
              file=sys.stderr, flush=True)
    names = ", ".join(run.name for run in server.explorer.runs)
    print(f"explore {names} at {server.url}  (Ctrl-C stops)", flush=True)
    # Ctrl-C and SIGTERM stop it (as KeyboardInterrupt), also when it was started with SIGINT ignored.
    with stop_signals_to(signal.default_int_handler):
        try:
            server.serve_forever(poll_interval=0.2)
        except KeyboardInterrupt:
            print("stopped", flush=True)
        finally:
            server.server_close()
