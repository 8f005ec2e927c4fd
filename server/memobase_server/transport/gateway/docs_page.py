"""A self-contained HTML page for an OpenAPI document: rendered on the server, no script, no
style sheet or font from elsewhere. It lists the operations by tag (parameters, body,
answers) and the schemas, with links between them."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["render_docs_page", "sketch"]

_CODE = re.compile(r"`([^`]+)`")
_METHOD_ORDER = ("get", "post", "put", "patch", "delete", "head", "options")
_STYLE = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d2330}
header{background:#1d2330;color:#fff;padding:18px 32px}header a{color:#9fc8ff}
main{display:flex}nav{width:400px;flex:none;padding:16px;border-right:1px solid #dde;
height:calc(100vh - 90px);overflow:auto;position:sticky;top:0;font-size:13px}
nav a{display:block;color:#1d2330;text-decoration:none;padding:2px 0;white-space:nowrap}
nav h3{margin:12px 0 4px}article{padding:8px 32px 64px;min-width:0;flex:1}
section.op{border:1px solid #dde;border-radius:6px;margin:18px 0;padding:4px 16px 12px}
.m{display:inline-block;min-width:58px;text-align:center;border-radius:4px;color:#fff;
font:bold 12px monospace;padding:2px 4px;margin-right:6px}
.get{background:#2f7dd1}.post{background:#2a9d5b}.put{background:#c98a12}
.delete{background:#c7392f}.patch{background:#7a4fc9}
code,.t{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:13px}
table{border-collapse:collapse;margin:6px 0;width:100%}
td,th{border-bottom:1px solid #eef;padding:4px 8px;text-align:left;vertical-align:top}
th{font-size:12px;color:#556}.lock{font-size:12px;color:#556}
"""


def _inline(text: str) -> str:
    """Escaped text with `code` spans."""
    return _CODE.sub(lambda m: f"<code>{m.group(1)}</code>", html.escape(text))


def _markdown(text: str) -> str:
    """Paragraphs and `- ` lists (continued on indented lines), which is all the document uses."""
    out: list[str] = []
    items: list[str] = []
    for block in text.split("\n\n"):
        lines = block.strip().splitlines()
        if lines and lines[0].startswith("- "):
            for line in lines:
                if line.startswith("- "):
                    items.append(line[2:].strip())
                elif items:
                    items[-1] += " " + line.strip()
            out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + "</ul>")
            items = []
        elif lines:
            out.append(f"<p>{_inline(' '.join(line.strip() for line in lines))}</p>")
    return "".join(out)


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def sketch(schema: Any, depth: int = 0) -> str:
    """A one-line HTML sketch of a schema's type, with links to component schemas."""
    if not isinstance(schema, Mapping) or depth > 6:
        return "any"
    if "$ref" in schema:
        name = _ref_name(str(schema["$ref"]))
        return f'<a href="#schema-{html.escape(name)}">{html.escape(name)}</a>'
    if "const" in schema:
        return html.escape(json.dumps(schema["const"]))
    if "enum" in schema:
        return " | ".join(html.escape(json.dumps(v)) for v in schema["enum"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " | ".join(sketch(s, depth + 1) for s in schema[key])
    kind = schema.get("type")
    if isinstance(kind, list):
        return " | ".join(sketch({**schema, "type": k}, depth + 1) for k in kind)
    if kind == "array":
        return f"array&lt;{sketch(schema.get('items', {}), depth + 1)}&gt;"
    if kind == "object":
        extra = schema.get("additionalProperties")
        properties = schema.get("properties")
        if isinstance(properties, Mapping) and properties:
            inner = ", ".join(
                f"{html.escape(str(k))}: {sketch(v, depth + 1)}" for k, v in properties.items()
            )
            return "{" + inner + "}"
        if isinstance(extra, Mapping) and extra:
            return f"map&lt;string, {sketch(extra, depth + 1)}&gt;"
        return "object"
    if kind is None:
        return "any"
    text = str(kind)
    fmt = schema.get("format")
    if fmt:
        text += f" ({fmt})"
    return html.escape(text)


def _resolve(document: Mapping[str, Any], item: Any) -> Mapping[str, Any]:
    if isinstance(item, Mapping) and "$ref" in item:
        node: Any = document
        for part in str(item["$ref"]).lstrip("#/").split("/"):
            node = node.get(part, {}) if isinstance(node, Mapping) else {}
        return node if isinstance(node, Mapping) else {}
    return item if isinstance(item, Mapping) else {}


def _anchor(operation: Mapping[str, Any], method: str, path: str) -> str:
    raw = str(operation.get("operationId") or f"{method}-{path}")
    return "op-" + re.sub(r"[^A-Za-z0-9_.-]", "-", raw)


def _operation(
    document: Mapping[str, Any], method: str, path: str, op: Mapping[str, Any], secured: bool
) -> str:
    parts = [
        f'<section class="op" id="{_anchor(op, method, path)}">',
        f'<h3><span class="m {method}">{method.upper()}</span><code>{html.escape(path)}</code>'
        f" — {html.escape(str(op.get('summary', '')))}</h3>",
        f"<p>{_inline(str(op.get('description', '')))}</p>",
        '<p class="lock">'
        + ("Needs <code>Authorization: Bearer &lt;token&gt;</code>." if secured else "No token.")
        + "</p>",
    ]
    params = op.get("parameters") or []
    if params:
        parts.append("<table><tr><th>parameter</th><th>in</th><th>type</th><th></th></tr>")
        for raw in params:
            p = _resolve(document, raw)
            parts.append(
                f"<tr><td><code>{html.escape(str(p.get('name')))}</code></td>"
                f"<td>{html.escape(str(p.get('in')))}</td>"
                f'<td class="t">{sketch(p.get("schema", {}))}</td>'
                f"<td>{'required' if p.get('required') else ''}</td></tr>"
            )
        parts.append("</table>")
    body = op.get("requestBody")
    if isinstance(body, Mapping):
        for media, content in (body.get("content") or {}).items():
            schema = content.get("schema", {}) if isinstance(content, Mapping) else {}
            parts.append(
                f"<p>Body (<code>{html.escape(str(media))}</code>): "
                f'<span class="t">{sketch(schema)}</span></p>'
            )
    parts.append("<table><tr><th>HTTP</th><th>answer</th></tr>")
    for status, raw in (op.get("responses") or {}).items():
        response = _resolve(document, raw)
        content = response.get("content") or {}
        shapes = " ".join(
            sketch(c.get("schema", {})) for c in content.values() if isinstance(c, Mapping)
        )
        parts.append(
            f"<tr><td>{html.escape(str(status))}</td><td>"
            f"{_inline(str(response.get('description', '')))}"
            f'<div class="t">{shapes}</div></td></tr>'
        )
    parts.append("</table></section>")
    return "".join(parts)


def _schemas(document: Mapping[str, Any]) -> str:
    schemas = (document.get("components") or {}).get("schemas") or {}
    parts = ["<h2 id='schemas'>Schemas</h2>"]
    for name, schema in schemas.items():
        parts.append(
            f'<section class="op" id="schema-{html.escape(name)}"><h3>{html.escape(name)}</h3>'
        )
        if isinstance(schema, Mapping) and schema.get("description"):
            parts.append(f"<p>{_inline(str(schema['description']))}</p>")
        properties = schema.get("properties") if isinstance(schema, Mapping) else None
        if isinstance(properties, Mapping) and properties:
            required = set(schema.get("required", []))
            parts.append("<table><tr><th>field</th><th>type</th><th></th></tr>")
            for field, sub in properties.items():
                parts.append(
                    f"<tr><td><code>{html.escape(str(field))}</code></td>"
                    f'<td class="t">{sketch(sub)}</td>'
                    f"<td>{'always present' if field in required else ''}</td></tr>"
                )
            parts.append("</table>")
        else:
            parts.append(f'<p class="t">{sketch(schema)}</p>')
        parts.append("</section>")
    return "".join(parts)


def render_docs_page(document: Mapping[str, Any], *, openapi_url: str = "/openapi.json") -> str:
    """The page for `document` (an OpenAPI 3 document as a dict)."""
    info = document.get("info") or {}
    title = html.escape(str(info.get("title", "API")))
    secured_by_default = bool(document.get("security"))
    by_tag: dict[str, list[tuple[str, str, Mapping[str, Any]]]] = {}
    for path, item in (document.get("paths") or {}).items():
        for method in _METHOD_ORDER:
            op = item.get(method) if isinstance(item, Mapping) else None
            if isinstance(op, Mapping):
                tag = str((op.get("tags") or ["other"])[0])
                by_tag.setdefault(tag, []).append((method, str(path), op))
    nav: list[str] = []
    body: list[str] = []
    for tag, operations in by_tag.items():
        nav.append(f"<h3>{html.escape(tag)}</h3>")
        body.append(f"<h2>{html.escape(tag)}</h2>")
        for method, path, op in operations:
            nav.append(
                f'<a href="#{_anchor(op, method, path)}"><span class="m {method}">'
                f"{method.upper()}</span>{html.escape(path)}</a>"
            )
            security = op.get("security")
            secured = bool(security) if security is not None else secured_by_default
            body.append(_operation(document, method, path, op, secured))
    nav.append('<h3><a href="#schemas">Schemas</a></h3>')
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{title}</title><style>{_STYLE}</style></head><body>"
        f"<header><h1 style='margin:0'>{title} "
        f"<small>{html.escape(str(info.get('version', '')))}</small></h1>"
        f"<div>OpenAPI {html.escape(str(document.get('openapi', '')))}: "
        f'<a href="{html.escape(openapi_url)}">{html.escape(openapi_url)}</a></div></header>'
        "<main><nav>" + "".join(nav) + "</nav><article>"
        f"{_markdown(str(info.get('description', '')))}"
        + "".join(body)
        + _schemas(document)
        + "</article></main></body></html>"
    )
