"""A loopback receiver that records every request exactly as it came off the wire.

Wove's own callback server parses bodies and checks no signature; tests that need the raw
request (signatures, event shapes, what a submitted Job's worker sent) use this one instead.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Optional


@dataclass
class Received:
    method: str
    path: str
    """The request target as sent: path plus `?query`, which is what Wove v1 signs."""
    headers: Dict[str, str]
    body: bytes

    def header(self, name: str) -> Optional[str]:
        lowered = name.lower()
        return next((value for key, value in self.headers.items() if key.lower() == lowered), None)

    def event(self) -> Dict[str, Any]:
        return json.loads(self.body)


class EventReceiver:
    """Threaded HTTP server on 127.0.0.1 that records each POST and answers `status` (204)."""

    def __init__(self, status: int = 204) -> None:
        self.status = status
        # Seconds to wait before answering: a slow receiver.
        self.delay = 0.0
        self.requests: List[Received] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = self.headers.get("Content-Length")
                # Wove's receiver reads exactly Content-Length bytes; a body without one is a
                # protocol failure worth recording rather than guessing at.
                body = self.rfile.read(int(length)) if length is not None else b""
                with owner._lock:
                    owner.requests.append(Received("POST", self.path, dict(self.headers.items()), body))
                time.sleep(owner.delay)
                self.send_response(owner.status if length is not None else 411)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, _format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def received(self) -> List[Received]:
        with self._lock:
            return list(self.requests)

    def events(self) -> List[Dict[str, Any]]:
        return [request.event() for request in self.received()]

    def wait_for(self, predicate: Callable[[List[Dict[str, Any]]], bool], timeout: float) -> List[Dict[str, Any]]:
        """Wait (bounded) until the events received so far satisfy `predicate`; return them."""
        deadline = time.monotonic() + timeout
        while True:
            events = self.events()
            if predicate(events):
                return events
            if time.monotonic() >= deadline:
                raise AssertionError(f"no matching events within {timeout} s; got {[e.get('type') for e in events]}")
            time.sleep(0.05)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
