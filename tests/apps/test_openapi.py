"""The OpenAPI document: a valid OpenAPI 3.1 document, served without a key, naming every
call of the spec and every call the server mounts, each request closed to unknown fields."""

from __future__ import annotations

from openapi_spec_validator import validate

from rawws.apps.openapi import CALLS, PATH, document
from rawws.apps.routes import PREFIX
from tests.apps.test_bad_input import mounted
from tests.conftest import StartServer
from tests.support.helpers import http

SPEC_CALLS = {
    "publish", "publish_batch", "rooms_create", "rooms_list", "rooms_delete",
    "members_add", "members_remove", "users_disconnect", "presence", "history",
    "stream_open", "stream_append", "stream_finish",
}  # fmt: skip


def test_the_document_is_valid_openapi_3_1_with_every_call_of_the_spec() -> None:
    doc = document()
    validate(doc)
    assert doc["openapi"].startswith("3.1")
    assert set(doc["paths"]) == {PREFIX + name for name in SPEC_CALLS}
    assert set(CALLS) == SPEC_CALLS
    schemas = doc["components"]["schemas"]
    for name in SPEC_CALLS:
        operation = doc["paths"][PREFIX + name]["post"]
        assert operation["security"] == [{"apiKey": []}]
        assert {"200", "400", "401", "403", "429"} <= set(operation["responses"])
        assert schemas[f"{name}_request"]["additionalProperties"] is False
    scheme = doc["components"]["securitySchemes"]["apiKey"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")


async def test_it_is_served_without_a_key_and_names_exactly_the_mounted_calls(
    start_server: StartServer,
) -> None:
    server = await start_server()
    reply = await http(server.port, "GET", PATH)
    assert reply.status == 200
    assert reply.headers["content-type"] == "application/json"
    assert reply.json == document()
    names = mounted(server)
    assert names and {PREFIX + name for name in names} == set(reply.json["paths"])
