"""The JSON responses and the request body reader every HTTP route of the server shares.

Below ``app.py`` and the protocol modules, so each of them imports these without
importing the app.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from setpoint.errors import SetpointError
from setpoint.serving._hotpath import ClientGone, error_reply
from setpoint.serving._hotpath import read_body as read_asgi_body
from setpoint.serving.state import ServingState


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def error_response(error: SetpointError) -> Response:
    status, body, headers = error_reply(error)
    return Response(
        body,
        status_code=status,
        media_type="application/json",
        headers={k.decode(): v.decode() for k, v in headers},
    )


async def read_body(request: Request, state: ServingState) -> bytes:
    """The body of ``request``, refusing more than the state's ``max_request_bytes``
    (413) and a body slower than its ``body_timeout`` (408)."""
    try:
        return await read_asgi_body(
            request.scope, request.receive, state.max_request_bytes, state.body_timeout
        )
    except ClientGone:
        raise ClientDisconnect from None
