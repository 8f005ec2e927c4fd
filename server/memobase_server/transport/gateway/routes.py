"""HTTP routes compiled from `google.api.http` annotations, and the router that matches them."""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import unquote

from google.api import annotations_pb2, http_pb2  # type: ignore[import-untyped, unused-ignore]
from google.protobuf import message_factory
from google.protobuf.descriptor import (
    Descriptor,
    FieldDescriptor,
    FileDescriptor,
    MethodDescriptor,
    ServiceDescriptor,
)
from google.protobuf.message import Message

from .fields import resolve_path

_FIELD_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")


class TemplateError(ValueError):
    """An HttpRule that cannot be compiled."""


class RouteNotFoundError(LookupError):
    """No route has this path."""


class MethodNotAllowedError(LookupError):
    """Routes have this path, but not for this HTTP method."""

    def __init__(self, allowed: Iterable[str]) -> None:
        self.allowed = tuple(sorted(set(allowed)))
        super().__init__(", ".join(self.allowed))


class SegmentKind(enum.IntEnum):
    # Ordered by precedence: a lower kind is more specific.
    LITERAL = 0
    SINGLE = 1
    DEEP = 2


@dataclass(frozen=True, slots=True)
class Segment:
    kind: SegmentKind
    literal: str = ""


@dataclass(frozen=True, slots=True)
class Variable:
    field_path: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class PathTemplate:
    """A compiled path template such as `/api/v1/users/{user_id}` or `/v1/{name=shelves/*}:get`."""

    source: str
    segments: tuple[Segment, ...]
    variables: tuple[Variable, ...]
    verb: str | None

    @property
    def precedence(self) -> tuple[int, ...]:
        return tuple(segment.kind for segment in self.segments)

    @property
    def shape(self) -> tuple[object, ...]:
        return (*((s.kind, s.literal) for s in self.segments), self.verb)

    def match(self, segments: list[str]) -> dict[str, str] | None:
        """Variable values (joined with `/`) when the decoded path segments fit, else None."""
        if self.verb is not None:
            suffix = ":" + self.verb
            if not segments or not segments[-1].endswith(suffix):
                return None
            segments = [*segments[:-1], segments[-1][: -len(suffix)]]
        deep = bool(self.segments) and self.segments[-1].kind is SegmentKind.DEEP
        fixed = len(self.segments) - 1 if deep else len(self.segments)
        if len(segments) < fixed or (not deep and len(segments) != fixed):
            return None
        for template_segment, segment in zip(self.segments[:fixed], segments, strict=False):
            if template_segment.kind is SegmentKind.LITERAL:
                if segment != template_segment.literal:
                    return None
            elif not segment:
                return None
        params: dict[str, str] = {}
        for variable in self.variables:
            end = len(segments) if deep and variable.end == len(self.segments) else variable.end
            params[variable.field_path] = "/".join(segments[variable.start : end])
        return params


def _split_top_level(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for char in text:
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        if char == separator and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _segment(text: str, source: str) -> Segment:
    if text == "*":
        return Segment(SegmentKind.SINGLE)
    if text == "**":
        return Segment(SegmentKind.DEEP)
    if not text or any(char in text for char in "{}=*"):
        raise TemplateError(f"invalid segment {text!r} in path template {source!r}")
    return Segment(SegmentKind.LITERAL, text)


def compile_template(source: str) -> PathTemplate:
    if not source.startswith("/"):
        raise TemplateError(f"path template {source!r} must start with '/'")
    body = source[1:]
    verb: str | None = None
    last = _split_top_level(body, "/")[-1]
    if ":" in last and not last.endswith("}"):
        body, _, verb = body.rpartition(":")
    segments: list[Segment] = []
    variables: list[Variable] = []
    for part in _split_top_level(body, "/"):
        if part.startswith("{"):
            name, _, pattern = part[1:-1].partition("=")
            if not part.endswith("}") or not _FIELD_PATH.fullmatch(name) or "}" in pattern:
                raise TemplateError(f"invalid variable {part!r} in path template {source!r}")
            start = len(segments)
            segments.extend(_segment(sub, source) for sub in (pattern or "*").split("/"))
            variables.append(Variable(name, start, len(segments)))
        else:
            segments.append(_segment(part, source))
    if any(s.kind is SegmentKind.DEEP for s in segments[:-1]):
        raise TemplateError(f"'**' must be the last segment in path template {source!r}")
    return PathTemplate(source, tuple(segments), tuple(variables), verb)


@dataclass(frozen=True, slots=True, eq=False)
class Route:
    """One HTTP binding of one gRPC method."""

    http_method: str
    template: PathTemplate
    body: str | None
    response_body: str | None
    grpc_method: str
    request_class: type[Message]
    response_class: type[Message]
    path_fields: Mapping[str, tuple[FieldDescriptor, ...]]


@dataclass(frozen=True, slots=True)
class RouteMatch:
    route: Route
    path_params: dict[str, str]


def _top_level_field(message: Descriptor, name: str, what: str, method: str) -> str:
    if name not in message.fields_by_name:
        raise TemplateError(f"{method}: {what} {name!r} is not a field of {message.full_name}")
    return name


def _compile_rule(method: MethodDescriptor, rule: http_pb2.HttpRule) -> Route:
    kind = rule.WhichOneof("pattern")
    if kind is None:
        raise TemplateError(f"{method.full_name}: HttpRule without a pattern")
    if kind == "custom":
        http_method, source = rule.custom.kind.upper(), rule.custom.path
    else:
        http_method, source = kind.upper(), str(getattr(rule, kind))
    template = compile_template(source)
    request = method.input_type
    path_fields: dict[str, tuple[FieldDescriptor, ...]] = {}
    for variable in template.variables:
        chain = resolve_path(request, variable.field_path)
        if chain is None or chain[-1].is_repeated or chain[-1].message_type is not None:
            raise TemplateError(
                f"{method.full_name}: path variable {variable.field_path!r} "
                f"is not a singular scalar field of {request.full_name}"
            )
        path_fields[variable.field_path] = tuple(chain)
    body: str | None = None
    if rule.body:
        body = "*" if rule.body == "*" else _top_level_field(request, rule.body, "body", source)
    response_body: str | None = None
    if rule.response_body:
        response_body = _top_level_field(
            method.output_type, rule.response_body, "response_body", source
        )
    return Route(
        http_method=http_method,
        template=template,
        body=body,
        response_body=response_body,
        grpc_method=f"/{method.containing_service.full_name}/{method.name}",
        request_class=message_factory.GetMessageClass(request),
        response_class=message_factory.GetMessageClass(method.output_type),
        path_fields=path_fields,
    )


def routes_for_method(method: MethodDescriptor) -> list[Route]:
    """The routes of a method's HttpRule and its additional bindings (none when unannotated)."""
    options = method.GetOptions()
    if not options.HasExtension(annotations_pb2.http):
        return []
    if method.client_streaming or method.server_streaming:
        raise TemplateError(f"{method.full_name}: streaming methods are not transcoded")
    rule = options.Extensions[annotations_pb2.http]
    assert isinstance(rule, http_pb2.HttpRule)
    routes = [_compile_rule(method, rule)]
    for binding in rule.additional_bindings:
        if binding.additional_bindings:
            raise TemplateError(f"{method.full_name}: nested additional_bindings")
        routes.append(_compile_rule(method, binding))
    return routes


def split_path(raw_path: str) -> list[str] | None:
    """Percent-decoded segments of a raw (still encoded) request path; None if not absolute."""
    if not raw_path.startswith("/"):
        return None
    return [unquote(segment) for segment in raw_path[1:].split("/")]


class Router:
    """Matches (HTTP method, path) to a route; literal segments win over variables."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self._routes = tuple(routes)
        seen: dict[tuple[str, tuple[object, ...]], Route] = {}
        for route in self._routes:
            key = (route.http_method, route.template.shape)
            other = seen.get(key)
            if other is not None:
                raise TemplateError(
                    f"{route.http_method} {route.template.source} is bound to both "
                    f"{other.grpc_method} and {route.grpc_method}"
                )
            seen[key] = route

    @classmethod
    def from_services(cls, services: Iterable[ServiceDescriptor]) -> Router:
        return cls(
            route
            for service in services
            for method in service.methods
            for route in routes_for_method(method)
        )

    @classmethod
    def from_files(cls, files: Iterable[FileDescriptor]) -> Router:
        return cls.from_services(
            service for file in files for service in file.services_by_name.values()
        )

    @property
    def routes(self) -> tuple[Route, ...]:
        return self._routes

    def match(self, http_method: str, raw_path: str) -> RouteMatch:
        """Raises RouteNotFoundError for an unknown path, MethodNotAllowed for a known one."""
        segments = split_path(raw_path)
        if segments is None:
            raise RouteNotFoundError(raw_path)
        best: tuple[tuple[int, ...], Route, dict[str, str]] | None = None
        allowed: list[str] = []
        for route in self._routes:
            params = route.template.match(segments)
            if params is None:
                continue
            if route.http_method != http_method:
                allowed.append(route.http_method)
                continue
            precedence = route.template.precedence
            if best is None or precedence < best[0]:
                best = (precedence, route, params)
        if best is not None:
            return RouteMatch(best[1], best[2])
        if allowed:
            raise MethodNotAllowedError(allowed)
        raise RouteNotFoundError(raw_path)
