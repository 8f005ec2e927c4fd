"""The OpenAPI document: it covers every gateway route, it is valid OpenAPI 3.1, the server
serves it (and a docs page), and a bounded property-based run (schemathesis) against the
running server finds no server error and no answer that breaks the document."""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis import Case, CheckContext, Response
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from memobase_server.transport.gateway import Router, service_descriptors
from memobase_server.transport.gateway.openapi import (
    DOCS_PATH,
    OPENAPI_PATH,
    build_openapi,
    openapi_path,
)
from memobase_server.transport.gateway.routes import compile_template
from memobase_server.transport.grpc.server import PUBLIC_METHODS
from tests.conftest import Stack

MAX_EXAMPLES = 10
_PATH_PARAM = re.compile(r"{([^}]+)}")


@pytest.fixture(scope="module")
def router() -> Router:
    return Router.from_services(service_descriptors())


@pytest.fixture(scope="module")
def document(router: Router) -> dict[str, Any]:
    return build_openapi(router, public_methods=PUBLIC_METHODS)


def _refs(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _resolve(document: dict[str, Any], ref: str) -> object:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        assert isinstance(node, dict) and part in node, f"unresolved {ref}"
        node = node[part]
    return node


# --- the document -------------------------------------------------------------------------------


def test_every_gateway_route_is_documented(router: Router, document: dict[str, Any]) -> None:
    paths = document["paths"]
    documented = {
        (method.upper(), path)
        for path, item in paths.items()
        for method in item
        if method != "$ref"
    }
    expected = {(route.http_method, openapi_path(route)) for route in router.routes}
    assert len(router.routes) >= 30
    assert documented == expected
    for route in router.routes:
        operation = paths[openapi_path(route)][route.http_method.lower()]
        assert operation["x-grpc-method"] == route.grpc_method
        declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
        assert declared == set(route.path_fields), route.template.source


def test_document_is_valid_openapi(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1")
    schemathesis.openapi.from_dict(document).validate()  # the OpenAPI 3.1 meta-schema
    for ref in _refs(document):
        _resolve(document, ref)
    operation_ids = [
        op["operationId"] for item in document["paths"].values() for op in item.values()
    ]
    assert len(operation_ids) == len(set(operation_ids))
    for path, item in document["paths"].items():
        for operation in item.values():
            in_path = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert in_path == set(_PATH_PARAM.findall(path)), path


def test_document_shapes(document: dict[str, Any]) -> None:
    """Spot checks of the JSON mapping the gateway implements."""
    schemas = document["components"]["schemas"]
    paths = document["paths"]
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": document["components"]["securitySchemes"]["bearerAuth"]["description"],
    }
    assert document["security"] == [{"bearerAuth": []}]
    health = paths["/api/v1/healthcheck"]["get"]
    assert health["security"] == []
    assert "401" not in health["responses"]
    assert health["responses"]["200"]["content"]["application/json"]["schema"]["anyOf"][0][
        "properties"
    ]["data"] == {"type": "null"}  # an empty response message: data is null
    create = paths["/api/v1/users"]["post"]
    assert set(create["responses"]) == {"200", "401", "403", "413", "422", "501"}
    body = create["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["data"]["type"] == ["object", "null"]  # Struct: free-form
    assert body["properties"]["created_at"] == {}  # Value: any JSON
    # response_body: data is the repeated field, a list
    flush = paths["/api/v1/users/buffer/{user_id}/{buffer_type}"]["post"]
    data = flush["responses"]["200"]["content"]["application/json"]["schema"]["anyOf"][0]
    assert data["properties"]["data"] == {
        "type": "array",
        "items": {"$ref": "#/components/schemas/ChatModalResponse"},
    }
    # enums are lowercase short names; int64 are integers; Timestamps date-time and nullable
    assert schemas["BlobType"]["enum"] == [
        "unspecified",
        "chat",
        "summary",
        "doc",
        "image",
        "code",
        "transcript",
    ]
    usage = schemas["DailyUsage"]["properties"]["total_insert"]
    assert (usage["type"], usage["format"]) == ("integer", "int64")
    assert schemas["GetUserResponse"]["properties"]["created_at"] == {
        "type": ["string", "null"],
        "format": "date-time",
    }
    assert schemas["GetUserResponse"]["required"] == ["data", "id", "created_at", "updated_at"]
    # repeated query parameters are exploded arrays
    profile = {p["name"]: p for p in paths["/api/v1/users/profile/{user_id}"]["get"]["parameters"]}
    assert profile["prefer_topics"]["schema"]["type"] == "array"
    assert profile["prefer_topics"]["explode"] is True
    assert profile["topk"]["schema"]["type"] == "integer"
    # 422 carries the validation detail beside the envelope
    assert "detail" in schemas["ValidationErrorEnvelope"]["required"]
    # the FieldMask the gateway fills from the body is no query parameter
    update_event = paths["/api/v1/users/event/{user_id}/{event_id}"]["put"]
    assert "update_mask" not in {p["name"] for p in update_event["parameters"]}


# --- what the server serves ---------------------------------------------------------------------


def test_server_serves_the_document_and_the_docs_page(
    stack: Stack, document: dict[str, Any]
) -> None:
    reply = httpx.get(stack.http_url + OPENAPI_PATH, timeout=10)
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("application/json")
    assert reply.json() == document

    page = httpx.get(stack.http_url + DOCS_PATH, timeout=10)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    for path in document["paths"]:
        assert path in html
    # self-contained: nothing is loaded from anywhere else
    assert "<script" not in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)


# --- schemathesis against the running server ----------------------------------------------------


def _no_internal_error(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
    """No 5xx (501, a documented 'not implemented yet', aside), and no internal error hidden
    in the envelope (errno 500 comes with HTTP 200)."""
    if response.status_code != 501:
        not_a_server_error(ctx, response, case)
    try:
        body = response.json()
    except ValueError:
        return None
    if isinstance(body, dict) and body.get("errno") == 500:
        raise AssertionError(f"internal error in the envelope: {body.get('errmsg')}")
    return None


CHECKS = [
    _no_internal_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def _selected(method: str, path: str) -> bool:
    return method.upper() == "GET" or (method.upper(), path) == ("POST", "/api/v1/users")


@pytest.fixture(scope="module")
def seeded_user(stack: Stack) -> dict[str, str]:
    """A user with a chat blob, and (through the scripted model) a profile and events, so the
    read routes answer real data and not only errors."""
    headers = {"Authorization": f"Bearer {stack.root_token}"}
    with httpx.Client(base_url=stack.http_url, headers=headers, timeout=60) as client:

        def call(method: str, path: str, **kwargs: Any) -> Any:
            reply = client.request(method, path, **kwargs)
            body = reply.json()
            assert reply.status_code == 200 and body["errno"] == 0, body
            return body["data"]

        user_id = call("POST", "/api/v1/users", json={"data": {"name": "Ada"}})["id"]
        messages = [
            {"role": "user", "content": "I moved to Lisbon and I love surfing."},
            {"role": "assistant", "content": "Noted."},
        ]
        blob = {"blob_type": "chat", "blob_data": {"messages": messages}}
        blob_id = call("POST", f"/api/v1/blobs/insert/{user_id}", json=blob)["id"]
        call("POST", f"/api/v1/users/buffer/{user_id}/chat?wait_process=true")
        call(
            "POST",
            f"/api/v1/users/profile/{user_id}",
            json={"content": "Ada", "attributes": {"topic": "basic_info", "sub_topic": "name"}},
        )
    return {"user_id": user_id, "blob_id": blob_id}


def _run_operation(
    operation: Any,
    stack: Stack,
    path_parameters: dict[str, str] | None,
    failures: list[str],
) -> int:
    headers = {"Authorization": f"Bearer {stack.root_token}"}
    calls = 0

    @hypothesis.settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: the run stays bounded
        suppress_health_check=list(HealthCheck),
    )
    @hypothesis.given(case=operation.as_strategy(path_parameters=path_parameters))
    def run(case: Case[Any]) -> None:
        nonlocal calls
        calls += 1
        case.call_and_validate(base_url=stack.http_url, headers=headers, checks=CHECKS, timeout=60)

    try:
        run()
    # A failed check (schemathesis raises a BaseExceptionGroup): collect it, test the others.
    except (Exception, BaseExceptionGroup) as exc:
        failures.append(f"{operation.label} {path_parameters or ''}: {exc}"[:3000])
    return calls


def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    stack: Stack, document: dict[str, Any], seeded_user: dict[str, str]
) -> None:
    schema = schemathesis.openapi.from_dict(document)
    failures: list[str] = []
    operations = 0
    calls = 0
    started = time.monotonic()
    for result in schema.get_all_operations():
        if not isinstance(result, Ok):
            failures.append(f"an operation schemathesis cannot read: {result.err()}")
            continue
        operation = result.ok()
        if not _selected(operation.method, operation.path):
            continue
        operations += 1
        calls += _run_operation(operation, stack, None, failures)
        names = set(_PATH_PARAM.findall(operation.path))
        if "user_id" in names:  # again, on a user who has data
            known = {k: v for k, v in seeded_user.items() if k in names}
            calls += _run_operation(operation, stack, known, failures)
    elapsed = time.monotonic() - started
    assert operations >= 15
    assert calls >= operations
    assert not failures, f"{len(failures)} failing operations:\n\n" + "\n\n".join(failures)
    assert elapsed < 600


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("/api/v1/users/{user_id}", "/api/v1/users/{user_id}"),
        ("/v1/{name=shelves/*}/books/*:get", "/v1/{name}/books/{_wildcard1}:get"),
        ("/v1/files/{path=**}", "/v1/files/{path}"),
    ],
)
def test_openapi_path_of_templates(router: Router, source: str, expected: str) -> None:
    route = dataclasses.replace(router.routes[0], template=compile_template(source))
    assert openapi_path(route) == expected
