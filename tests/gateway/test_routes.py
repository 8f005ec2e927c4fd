"""Routing: templates compiled from the `google.api.http` annotations and the Router."""

from __future__ import annotations

import pytest
from google.api import annotations_pb2, http_pb2  # type: ignore[import-untyped, unused-ignore]
from google.protobuf import descriptor_pb2, descriptor_pool

from memobase_server.gen.memobase.v1 import blob_pb2, project_pb2, user_pb2
from memobase_server.transport.gateway import Router, service_descriptors
from memobase_server.transport.gateway.routes import (
    MethodNotAllowedError,
    RouteNotFoundError,
    TemplateError,
    compile_template,
    routes_for_method,
    split_path,
)

U = "5f0c8a3e-2b1d-4c6e-9a7f-1e2d3c4b5a69"
X = "0b7d6c5e-4f3a-4b2c-8d1e-0f9a8b7c6d5e"

# (HTTP method, concrete path, gRPC method, expected path params): section 2 of the contract.
DOCUMENTED: list[tuple[str, str, str, dict[str, str]]] = [
    ("GET", "/api/v1/healthcheck", "ProjectService/Healthcheck", {}),
    ("GET", "/api/v1/admin/status_check", "ProjectService/StatusCheck", {}),
    ("GET", "/api/v1/project/profile_config", "ProjectService/GetProfileConfig", {}),
    ("POST", "/api/v1/project/profile_config", "ProjectService/UpdateProfileConfig", {}),
    ("GET", "/api/v1/project/billing", "ProjectService/GetBilling", {}),
    ("GET", "/api/v1/project/users", "ProjectService/ListUsers", {}),
    ("GET", "/api/v1/project/usage", "ProjectService/GetDailyUsage", {}),
    ("POST", "/api/v1/users", "UserService/CreateUser", {}),
    ("GET", f"/api/v1/users/{U}", "UserService/GetUser", {"user_id": U}),
    ("PUT", f"/api/v1/users/{U}", "UserService/UpdateUser", {"user_id": U}),
    ("DELETE", f"/api/v1/users/{U}", "UserService/DeleteUser", {"user_id": U}),
    ("POST", f"/api/v1/blobs/insert/{U}", "BlobService/InsertBlob", {"user_id": U}),
    ("GET", f"/api/v1/blobs/{U}/{X}", "BlobService/GetBlob", {"user_id": U, "blob_id": X}),
    ("DELETE", f"/api/v1/blobs/{U}/{X}", "BlobService/DeleteBlob", {"user_id": U, "blob_id": X}),
    (
        "GET",
        f"/api/v1/users/blobs/{U}/chat",
        "BlobService/ListBlobs",
        {"user_id": U, "blob_type": "chat"},
    ),
    (
        "POST",
        f"/api/v1/users/buffer/{U}/chat",
        "BlobService/FlushBuffer",
        {"user_id": U, "buffer_type": "chat"},
    ),
    (
        "GET",
        f"/api/v1/users/buffer/capacity/{U}/chat",
        "BlobService/GetBufferCapacity",
        {"user_id": U, "buffer_type": "chat"},
    ),
    ("GET", f"/api/v1/users/profile/{U}", "ProfileService/GetProfile", {"user_id": U}),
    ("POST", f"/api/v1/users/profile/{U}", "ProfileService/AddProfile", {"user_id": U}),
    (
        "PUT",
        f"/api/v1/users/profile/{U}/{X}",
        "ProfileService/UpdateProfile",
        {"user_id": U, "profile_id": X},
    ),
    (
        "DELETE",
        f"/api/v1/users/profile/{U}/{X}",
        "ProfileService/DeleteProfile",
        {"user_id": U, "profile_id": X},
    ),
    ("POST", f"/api/v1/users/profile/import/{U}", "ProjectService/ImportProfile", {"user_id": U}),
    ("GET", f"/api/v1/users/event/{U}", "EventService/ListEvents", {"user_id": U}),
    (
        "PUT",
        f"/api/v1/users/event/{U}/{X}",
        "EventService/UpdateEvent",
        {"user_id": U, "event_id": X},
    ),
    (
        "DELETE",
        f"/api/v1/users/event/{U}/{X}",
        "EventService/DeleteEvent",
        {"user_id": U, "event_id": X},
    ),
    ("GET", f"/api/v1/users/event/search/{U}", "EventService/SearchEvents", {"user_id": U}),
    (
        "GET",
        f"/api/v1/users/event_gist/search/{U}",
        "EventService/SearchEventGists",
        {"user_id": U},
    ),
    (
        "GET",
        f"/api/v1/users/event_tags/search/{U}",
        "EventService/SearchEventsByTags",
        {"user_id": U},
    ),
    ("GET", f"/api/v1/users/context/{U}", "ProfileService/GetContext", {"user_id": U}),
    (
        "POST",
        f"/api/v1/users/roleplay/proactive/{U}",
        "ProjectService/ProactiveTopic",
        {"user_id": U},
    ),
    ("POST", "/api/v1/admin/projects", "ProjectService/CreateProject", {}),
    ("GET", "/api/v1/admin/projects", "ProjectService/ListProjects", {}),
    (
        "POST",
        "/api/v1/admin/projects/p1/rotate_key",
        "ProjectService/RotateProjectKey",
        {"project_id": "p1"},
    ),
    (
        "POST",
        "/api/v1/admin/projects/p1/revoke_key",
        "ProjectService/RevokeProjectKey",
        {"project_id": "p1"},
    ),
]


@pytest.fixture(scope="module")
def router() -> Router:
    return Router.from_services(service_descriptors())


@pytest.mark.parametrize(("method", "path", "grpc_method", "params"), DOCUMENTED)
def test_documented_route_is_reachable(
    router: Router, method: str, path: str, grpc_method: str, params: dict[str, str]
) -> None:
    match = router.match(method, path)
    assert match.route.grpc_method == f"/memobase.v1.{grpc_method}"
    assert match.path_params == params


def test_every_annotated_rpc_is_documented_and_vice_versa(router: Router) -> None:
    annotated = {route.grpc_method for route in router.routes}
    documented = {f"/memobase.v1.{grpc_method}" for _, _, grpc_method, _ in DOCUMENTED}
    assert annotated == documented
    every_method = {
        f"/{service.full_name}/{method.name}"
        for service in service_descriptors()
        for method in service.methods
    }
    assert annotated == every_method
    assert len(router.routes) == len(DOCUMENTED)


def test_route_carries_message_classes_and_body_rules(router: Router) -> None:
    insert = router.match("POST", f"/api/v1/blobs/insert/{U}").route
    assert insert.request_class is blob_pb2.InsertBlobRequest
    assert insert.response_class is blob_pb2.InsertBlobResponse
    assert insert.body == "blob"
    assert insert.response_body is None
    assert router.match("PUT", f"/api/v1/users/{U}").route.body == "data"
    assert router.match("POST", "/api/v1/users").route.body == "*"
    assert router.match("GET", f"/api/v1/users/{U}").route.body is None
    assert router.match("POST", f"/api/v1/users/buffer/{U}/chat").route.response_body == (
        "chat_results"
    )
    usage = router.match("GET", "/api/v1/project/usage").route
    assert usage.response_body == "usages"
    assert usage.response_class is project_pb2.GetDailyUsageResponse


def test_literal_segments_win_over_variables(router: Router) -> None:
    assert router.match("GET", f"/api/v1/users/event/search/{U}").route.grpc_method.endswith(
        "/SearchEvents"
    )
    assert router.match("GET", f"/api/v1/users/event/{U}").route.grpc_method.endswith("/ListEvents")
    assert router.match("POST", f"/api/v1/users/profile/import/{U}").route.grpc_method.endswith(
        "/ImportProfile"
    )
    # Only the variable template allows PUT, so "import" is taken as a user id there.
    update = router.match("PUT", f"/api/v1/users/profile/import/{U}")
    assert update.route.grpc_method.endswith("/UpdateProfile")
    assert update.path_params == {"user_id": "import", "profile_id": U}


def test_literal_precedence_is_independent_of_declaration_order() -> None:
    routes = Router.from_services(service_descriptors()).routes
    reversed_router = Router(reversed(routes))
    match = reversed_router.match("GET", f"/api/v1/users/event/search/{U}")
    assert match.route.grpc_method.endswith("/SearchEvents")


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/nope",
        "/api/v1/users/",
        f"/api/v1/users/{U}/extra/segments",
        "/api/v2/users",
        "/",
        "",
        "api/v1/users",
        f"/api/v1/blobs/{U}//",
    ],
)
def test_unknown_path_is_not_found(router: Router, path: str) -> None:
    with pytest.raises(RouteNotFoundError):
        router.match("GET", path)


def test_known_path_with_wrong_method_is_not_allowed(router: Router) -> None:
    with pytest.raises(MethodNotAllowedError) as caught:
        router.match("PATCH", f"/api/v1/users/{U}")
    assert caught.value.allowed == ("DELETE", "GET", "PUT")
    # GET /blobs/{user_id}/{blob_id} also matches this path.
    assert router.match("GET", f"/api/v1/blobs/insert/{U}").route.grpc_method.endswith("GetBlob")
    with pytest.raises(MethodNotAllowedError) as caught:
        router.match("DELETE", "/api/v1/healthcheck")
    assert caught.value.allowed == ("GET",)


def test_path_segments_are_percent_decoded(router: Router) -> None:
    match = router.match("GET", "/api/v1/users/a%2Fb%20c")
    assert match.path_params == {"user_id": "a/b c"}
    assert split_path("/x/%E4%BD%A0") == ["x", "你"]
    assert split_path("relative") is None


def test_template_variables_with_patterns_deep_wildcards_and_verbs() -> None:
    template = compile_template("/v1/{name=shelves/*/books/*}:publish")
    assert template.verb == "publish"
    assert template.match(["v1", "shelves", "s1", "books", "b2:publish"]) == {
        "name": "shelves/s1/books/b2"
    }
    assert template.match(["v1", "shelves", "s1", "books", "b2"]) is None
    deep = compile_template("/files/{path=**}")
    assert deep.match(["files", "a", "b", "c"]) == {"path": "a/b/c"}
    assert deep.match(["files"]) == {"path": ""}
    wildcard = compile_template("/a/*/c")
    assert wildcard.match(["a", "b", "c"]) == {}
    assert wildcard.match(["a", "", "c"]) is None


@pytest.mark.parametrize(
    "source", ["no/leading/slash", "/a/**/b", "/a/{x", "/a/{x}}", "/a//b", "/a/b{c}"]
)
def test_invalid_templates_are_rejected(source: str) -> None:
    with pytest.raises(TemplateError):
        compile_template(source)


def _synthetic_service(rule: http_pb2.HttpRule, name: str) -> descriptor_pb2.FileDescriptorProto:
    file_proto = descriptor_pb2.FileDescriptorProto(
        name=f"test/{name}.proto", package=f"test.{name}", syntax="proto3"
    )
    request = file_proto.message_type.add(name="Req")
    request.field.add(
        name="id",
        number=1,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
        label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
    )
    request.field.add(
        name="tags",
        number=2,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
        label=descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED,
    )
    file_proto.message_type.add(name="Resp")
    service = file_proto.service.add(name="Things")
    method = service.method.add(
        name="Get", input_type=f".test.{name}.Req", output_type=f".test.{name}.Resp"
    )
    method.options.Extensions[annotations_pb2.http].CopyFrom(rule)
    return file_proto


def _router_for(rule: http_pb2.HttpRule, name: str) -> Router:
    pool = descriptor_pool.DescriptorPool()
    pool.Add(_synthetic_service(rule, name))
    service = pool.FindServiceByName(f"test.{name}.Things")
    return Router.from_services([service])


def test_additional_bindings_and_custom_patterns() -> None:
    rule = http_pb2.HttpRule(get="/v1/things/{id}")
    rule.additional_bindings.add(post="/v1/things/{id}:get", body="*")
    rule.additional_bindings.add(custom=http_pb2.CustomHttpPattern(kind="HEAD", path="/v1/t/{id}"))
    router = _router_for(rule, "bindings")
    assert [(r.http_method, r.template.source, r.body) for r in router.routes] == [
        ("GET", "/v1/things/{id}", None),
        ("POST", "/v1/things/{id}:get", "*"),
        ("HEAD", "/v1/t/{id}", None),
    ]
    assert router.match("POST", "/v1/things/7:get").path_params == {"id": "7"}
    assert router.match("HEAD", "/v1/t/8").route.grpc_method == "/test.bindings.Things/Get"
    assert router.routes[0].request_class().DESCRIPTOR.full_name == "test.bindings.Req"
    assert router.routes[0].response_class().DESCRIPTOR.full_name == "test.bindings.Resp"


@pytest.mark.parametrize(
    ("rule", "name"),
    [
        (http_pb2.HttpRule(get="/v1/{missing}"), "badvar"),
        (http_pb2.HttpRule(get="/v1/{tags}"), "repeatedvar"),
        (http_pb2.HttpRule(post="/v1/x", body="nope"), "badbody"),
        (http_pb2.HttpRule(get="/v1/x", response_body="nope"), "badresponse"),
    ],
)
def test_bad_annotations_fail_at_build_time(rule: http_pb2.HttpRule, name: str) -> None:
    with pytest.raises(TemplateError):
        _router_for(rule, name)


def test_two_methods_on_one_binding_are_rejected() -> None:
    routes = Router.from_services(service_descriptors()).routes
    get_user = next(r for r in routes if r.grpc_method.endswith("/GetUser"))
    with pytest.raises(TemplateError):
        Router([get_user, get_user])


def test_unannotated_methods_have_no_routes() -> None:
    pool = descriptor_pool.DescriptorPool()
    file_proto = _synthetic_service(http_pb2.HttpRule(get="/v1/x"), "plain")
    file_proto.service[0].method[0].ClearField("options")
    pool.Add(file_proto)
    method = pool.FindServiceByName("test.plain.Things").methods_by_name["Get"]
    assert routes_for_method(method) == []


def test_user_service_routes_come_from_the_generated_descriptors() -> None:
    service = user_pb2.DESCRIPTOR.services_by_name["UserService"]
    router = Router.from_services([service])
    assert {(r.http_method, r.template.source) for r in router.routes} == {
        ("POST", "/api/v1/users"),
        ("GET", "/api/v1/users/{user_id}"),
        ("PUT", "/api/v1/users/{user_id}"),
        ("DELETE", "/api/v1/users/{user_id}"),
    }
    files_router = Router.from_files([user_pb2.DESCRIPTOR])
    assert len(files_router.routes) == 4
