"""The OpenAPI 3.1 document of ``/api/v1``: every call of ``docs/server-api.md``'s table.

Built here from one table (``CALLS``) rather than from the handlers, so the document names
every call of the spec, those mounted and any still to come, and a test checks that every
mounted call is in it. Requests are closed (``additionalProperties: false``), as the server
reads them (an unknown field is a 400). Served at ``GET /api/v1/openapi.json``, with no key:
it holds nothing secret.
"""

from __future__ import annotations

import json
from typing import Any

from rawws.apps.keys import PUBLISH, READ, ROOMS, SCOPES, USERS
from rawws.chat.room_names import MAX_ROOM_CHARS
from rawws.chat.wire import MAX_TEXT_CHARS
from rawws.core.http import Request, Response, Router

PATH = "/api/v1/openapi.json"
MAX_BATCH = 100
Schema = dict[str, Any]

STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer"}
ROOM: Schema = {"type": "string", "minLength": 1, "maxLength": MAX_ROOM_CHARS}
USER: Schema = {"type": "string", "minLength": 1, "maxLength": 32}
TEXT: Schema = {"type": "string", "minLength": 1, "maxLength": MAX_TEXT_CHARS}
KIND: Schema = {"type": "string", "enum": ["public", "private", "feed"]}
IDEMPOTENCY_KEY: Schema = {
    "type": "string",
    "minLength": 1,
    "maxLength": 128,
    "pattern": "^[ -~]+$",
}


def closed(required: list[str], **properties: Schema) -> Schema:
    """A request object: exactly these fields, ``required`` ones required."""
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def answer(**properties: Schema) -> Schema:
    """An answer object: every field given is always there."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
    }


PUBLISHED = answer(room=ROOM, id=INTEGER, duplicate={"type": "boolean"})
ERROR: Schema = answer(
    error=answer(status=INTEGER, code=STRING, message=STRING),
)
ROOM_ANSWER = answer(room=ROOM, kind=KIND, owner={"type": ["string", "null"]})
#: A ``message`` frame of docs/protocol.md (it may carry more: edited, deleted, app, stream).
MESSAGE: Schema = {
    "type": "object",
    "properties": {
        "type": {"type": "string"},
        "room": ROOM,
        "id": INTEGER,
        "user": STRING,
        "text": STRING,
        "ts": {"type": "number"},
        "app": {"type": "boolean"},
        "stream": STRING,
    },
    "required": ["type", "room", "id"],
}
ONE_MESSAGE = closed(
    ["room", "text"], room=ROOM, text=TEXT, idempotency_key=IDEMPOTENCY_KEY
)

#: name → (scope, summary, request, answer): the spec's table.
CALLS: dict[str, tuple[str, str, Schema, Schema]] = {
    "publish": (
        PUBLISH,
        "Publish a message into a room (exactly once with idempotency_key)",
        ONE_MESSAGE,
        PUBLISHED,
    ),
    "publish_batch": (
        PUBLISH,
        "Publish up to 100 messages, each with its own result",
        closed(
            ["messages"],
            messages={"type": "array", "items": ONE_MESSAGE, "maxItems": MAX_BATCH},
        ),
        answer(
            results={"type": "array", "items": {"oneOf": [PUBLISHED, ERROR]}},
        ),
    ),
    "rooms_create": (
        ROOMS,
        "Create a room (a private room's name is the label; the server adds the suffix)",
        closed(
            ["room", "kind"],
            room=ROOM,
            kind=KIND,
            owner=USER,
            members={"type": "array", "items": USER},
        ),
        ROOM_ANSWER,
    ),
    "rooms_list": (
        ROOMS,
        "The key's rooms",
        closed([], prefix=STRING),
        answer(
            rooms={"type": "array", "items": ROOM_ANSWER},
            truncated={"type": "boolean"},
        ),
    ),
    "rooms_delete": (
        ROOMS,
        "Delete a room",
        closed(["room"], room=ROOM),
        answer(room=ROOM, deleted={"const": True}),
    ),
    "members_add": (
        ROOMS,
        "Add a member to a room",
        closed(
            ["room", "user"],
            room=ROOM,
            user=USER,
            role={"type": "string", "enum": ["member", "moderator"]},
        ),
        answer(room=ROOM, user=USER, role=STRING),
    ),
    "members_remove": (
        ROOMS,
        "Remove a member from a room",
        closed(["room", "user"], room=ROOM, user=USER),
        answer(room=ROOM, user=USER, removed={"const": True}),
    ),
    "users_disconnect": (
        USERS,
        "Close a user's connections (each node closes its own)",
        closed(["user"], user=USER),
        answer(user=USER, connections={"type": "integer", "minimum": 0}),
    ),
    "presence": (
        READ,
        "Who is in a room",
        closed(["room"], room=ROOM),
        answer(room=ROOM, users={"type": "array", "items": USER}),
    ),
    "history": (
        READ,
        "A room's messages before an id (the newest without one)",
        closed(
            ["room"],
            room=ROOM,
            before={"type": "integer", "minimum": 1},
            limit={"type": "integer", "minimum": 1},
        ),
        answer(room=ROOM, messages={"type": "array", "items": MESSAGE}),
    ),
    "stream_open": (
        PUBLISH,
        "Open a streamed message in a room",
        closed(["room"], room=ROOM),
        answer(room=ROOM, stream=STRING),
    ),
    "stream_append": (
        PUBLISH,
        "Append text to an open stream",
        closed(["stream", "text"], stream=STRING, text=TEXT),
        answer(stream=STRING, seq={"type": "integer", "minimum": 1}),
    ),
    "stream_finish": (
        PUBLISH,
        "Finish a stream: its whole text is stored as one message",
        closed(["stream"], stream=STRING),
        answer(room=ROOM, stream=STRING, id=INTEGER),
    ),
}

#: Every status a call may answer besides 200, each with the error body.
ERRORS = {
    "400": "bad_json or bad_field (named in the message)",
    "401": "bad_key: not a live API key",
    "403": "scope: the key lacks the call's scope",
    "404": "no_such_room (missing, or outside the key's rooms)",
    "409": "a conflict (idempotency_conflict, stream_finished, …)",
    "413": "too_long: the body or a text is over its limit",
    "415": "bad_content_type: not application/json",
    "429": "rate_limited: see Retry-After",
    "503": "unavailable: the store is down, retry (see Retry-After)",
}


def _operation(name: str, scope: str, summary: str) -> Schema:
    responses: Schema = {
        "200": {
            "description": "Done",
            "content": {
                "application/json": {
                    "schema": {"$ref": f"#/components/schemas/{name}_answer"}
                }
            },
        }
    }
    for status in ERRORS:
        responses[status] = {"$ref": f"#/components/responses/e{status}"}
    return {
        "operationId": name,
        "summary": summary,
        "description": f"Needs the `{scope}` scope.",
        "tags": [scope],
        "security": [{"apiKey": []}],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"$ref": f"#/components/schemas/{name}_request"}
                }
            },
        },
        "responses": responses,
    }


def document() -> Schema:
    """The whole document, as a JSON-able dict."""
    schemas: Schema = {"error": ERROR}
    paths: Schema = {}
    for name, (scope, summary, request, response) in CALLS.items():
        schemas[f"{name}_request"] = request
        schemas[f"{name}_answer"] = response
        paths[f"/api/v1/{name}"] = {"post": _operation(name, scope, summary)}
    error_content = {
        "application/json": {"schema": {"$ref": "#/components/schemas/error"}}
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "rawws server API",
            "version": "1",
            "description": "Publish into rooms, manage rooms and members, disconnect users, "
            "read presence and history, with an API key (docs/server-api.md).",
        },
        "servers": [{"url": "/"}],
        "tags": [{"name": scope} for scope in SCOPES],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "rwk_<id>_<secret>",
                    "description": "An API key from `rawws api-key create`.",
                }
            },
            "schemas": schemas,
            "responses": {
                f"e{status}": {"description": description, "content": error_content}
                for status, description in ERRORS.items()
            },
        },
    }


def add_document(router: Router) -> None:
    """Serve the document at ``PATH``, with no key."""
    body = json.dumps(document(), separators=(",", ":")).encode("utf-8")

    async def serve(request: Request) -> Response:
        return Response(200, [("Content-Type", "application/json")], body)

    router.add("GET", PATH, serve)
