"""Fixtures of the model tests: a torch hub folder in ``tmp_path`` and a loopback HTTP server
(127.0.0.1, ephemeral port, stops by itself) that serves the checkpoints the tests write."""

from __future__ import annotations

import functools
import http.server
import threading
import time
from pathlib import Path
from typing import Any, Iterator, List

import pytest
import torch

from cozoo.models import cache_dir

SERVER_LIFETIME_S = 120.0


@pytest.fixture
def hub_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``TORCH_HOME`` inside ``tmp_path``; returns the checkpoints cache folder."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    assert tmp_path in checkpoints.parents, "torch.hub.set_dir() was called: TORCH_HOME ignored"
    assert cache_dir() == checkpoints
    return checkpoints


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the files of a folder; ``/truncated/<name>`` announces the full length of
    ``<name>`` but sends only half of it."""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        if not self.path.startswith("/truncated/"):
            super().do_GET()
            return
        data = (Path(self.directory) / self.path[len("/truncated/") :]).read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.close_connection = True


class _Server:
    def __init__(self, root: Path, httpd: http.server.HTTPServer):
        self.root = root
        self.httpd = httpd
        self.requests: List[str] = httpd.requests

    def url(self, name: str) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/{name}"

    def publish(self, name: str, data: bytes) -> str:
        (self.root / name).write_bytes(data)
        return self.url(name)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[_Server]:
    """An HTTP server on 127.0.0.1 (ephemeral port) serving ``tmp_path/www`` from a thread;
    it stops when the test ends, or by itself after ``SERVER_LIFETIME_S``."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_Handler, directory=str(root))
    httpd = http.server.HTTPServer(("127.0.0.1", 0), handler)
    httpd.requests = []
    httpd.timeout = 0.1
    stop = threading.Event()
    deadline = time.monotonic() + SERVER_LIFETIME_S

    def serve() -> None:
        while not stop.is_set() and time.monotonic() < deadline:
            httpd.handle_request()

    thread = threading.Thread(target=serve, name="weights-test-http", daemon=True)
    thread.start()
    try:
        yield _Server(root, httpd)
    finally:
        stop.set()
        thread.join(timeout=5)
        httpd.server_close()
