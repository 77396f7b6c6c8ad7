"""The ASGI layer in front of the app: the token is checked, and the body counted as its bytes arrive.

Before routing, before any body is read: a request that needs the token (every method but GET, HEAD and
OPTIONS, and reads too when ``L2O_READ_OPEN=false``) without a valid ``Authorization: Bearer`` header gets
401. A body is limited per path (the upload limit on ``/distill``, 1 MiB elsewhere): a declared length
over the limit gets 413 at once, and any framing (chunked included) is counted as it is received — the
413 goes out as soon as the count passes the limit, and the app sees the client leave, so nothing of an
oversized request is kept or written. The dependencies of the routes check the token again.
"""

from __future__ import annotations

import json
import secrets

PUBLIC = ("/healthz", "/readyz", "/openapi.json", "/docs", "/redoc", "/static/")
OPEN_METHODS = {"GET", "HEAD", "OPTIONS"}


class TooLarge(Exception):
    pass


class RequestGuard:
    def __init__(self, app, token: str, read_open: bool, upload_limit: int, body_limit: int = 2**20):
        self.app, self.token = app, token.encode()
        self.read_open, self.upload_limit, self.body_limit = read_open, upload_limit, body_limit

    def limit(self, path: str) -> int:
        return self.upload_limit if path == "/distill" else self.body_limit

    def needs_token(self, method: str, path: str) -> bool:
        if path.startswith(PUBLIC) and method in OPEN_METHODS:
            return False
        return method not in OPEN_METHODS or not self.read_open

    def authorized(self, headers: dict[bytes, bytes]) -> bool:
        value = headers.get(b"authorization", b"")
        scheme, _, credentials = value.partition(b" ")
        return scheme.lower() == b"bearer" and secrets.compare_digest(credentials.strip(), self.token)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        method, path = scope["method"], scope["path"]
        if self.needs_token(method, path) and not self.authorized(headers):
            return await _reply(send, 401, "a valid bearer token is required",
                                [(b"www-authenticate", b"Bearer")], close=_has_body(headers))
        limit = self.limit(path)
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            return await _reply(send, 413, f"request body larger than {limit} bytes", close=True)
        state = {"received": 0, "replied": False, "started": False}

        async def counted_receive():
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > limit:
                    if not state["started"]:
                        state["replied"] = True
                        await _reply(send, 413, f"request body larger than {limit} bytes", close=True)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            if state["replied"]:  # our 413 went out; what the app says after it is dropped
                return
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not state["replied"]:
                raise  # the app's own failure; after our 413, the app only saw the client leave


def _has_body(headers: dict[bytes, bytes]) -> bool:
    return headers.get(b"content-length", b"0") not in (b"0", b"") or b"transfer-encoding" in headers


async def _reply(send, status: int, detail: str, extra=(), close: bool = False) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
