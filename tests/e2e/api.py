"""A small HTTPS client for the api-server, verifying it against the test CA.

It connects to the loopback address but checks the certificate for the
site's host name (SNI + hostname check), exactly as a browser on the
admin's network would for https://<api.host>:<port>.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class _PinnedConnection(http.client.HTTPSConnection):
    def __init__(self, address: str, hostname: str, port: int, context: ssl.SSLContext, timeout: float) -> None:
        super().__init__(hostname, port, context=context, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


@dataclass(frozen=True)
class ApiClient:
    hostname: str
    port: int
    cafile: Path
    address: str = "127.0.0.1"
    timeout: float = 30

    @property
    def base_url(self) -> str:
        return f"https://{self.hostname}:{self.port}"

    def request(self, method: str, path: str, body: Any = None, token: str | None = None,
                headers: dict[str, str] | None = None) -> Response:
        ctx = ssl.create_default_context(cafile=str(self.cafile))
        conn = _PinnedConnection(self.address, self.hostname, self.port, ctx, self.timeout)
        hdrs = {"Accept": "application/json", **(headers or {})}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        if token:
            hdrs["Authorization"] = f"Bearer {token}"
        try:
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            return Response(resp.status, resp.read())
        finally:
            conn.close()

    def get(self, path: str, token: str | None = None) -> Response:
        return self.request("GET", path, token=token)

    def token(self, username: str, password: str) -> Response:
        """POST /auth/token: 201 with access_token for a valid login, 401 otherwise."""
        return self.request("POST", "/auth/token", {"username": username, "password": password})

    def login(self, username: str, password: str) -> str:
        resp = self.token(username, password)
        assert resp.status in (200, 201), f"/auth/token for {username}: {resp.status} {resp.text[:500]}"
        return resp.json()["access_token"]

    def health(self) -> dict:
        return self.get("/api/v2/monitor/health").json()

    def wait_healthy(self, components: tuple[str, ...], timeout: float = 240) -> dict:
        """Poll /api/v2/monitor/health until every component reports healthy."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = self.health()
                if all(last.get(c, {}).get("status") == "healthy" for c in components):
                    return last
            except (OSError, ValueError, http.client.HTTPException) as exc:
                last = repr(exc)
            time.sleep(2)
        raise AssertionError(f"not healthy after {timeout:.0f} s: {last}")
