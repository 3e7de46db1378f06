"""The baseline for the token endpoint: a bare ASGI handler answering a small JSON body, on uvicorn."""

from __future__ import annotations

import sys
from typing import Any

import uvicorn

BODY = b'{"access_token":"x","token_type":"Bearer","expires_in":300}'


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": BODY})


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", lifespan="off", access_log=False)
