"""Google's Compute discovery document: loading, routing and schema validation.

The document is read from the pinned google-api-python-client wheel
(googleapiclient/discovery_cache/documents/compute.v1.json) so that the fake
validates against exactly what Google published for that client release, not
against a hand-written copy that could drift.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

DOC_ENV = "GCE_DISCOVERY_DOC"

_INT32 = (-(2**31), 2**31 - 1)
_UINT32 = (0, 2**32 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_UINT64 = (0, 2**64 - 1)
_DATETIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$"
)
_DURATION = re.compile(r"^-?\d+(\.\d{1,9})?s$")
_INT_STRING = re.compile(r"^-?\d+$")

# Query parameters that older clients still send and Compute still accepts but
# that newer discovery revisions no longer list (gcloud's lister sends
# returnPartialSuccess on every list/aggregatedList). Accepted and ignored.
LEGACY_QUERY_PARAMS = {
    "returnPartialSuccess": {"type": "boolean", "location": "query"},
}


def is_output_only(prop: dict) -> bool:
    """Newer revisions flag readOnly; many fields still only say so in prose."""
    desc = prop.get("description", "")
    return bool(prop.get("readOnly")) or "[Output Only]" in desc or desc.startswith("Output only.")


def load_document() -> tuple[dict, str]:
    """Returns (document, where-it-came-from)."""
    path = os.environ.get(DOC_ENV)
    if path:
        with open(path, encoding="utf-8") as f:
            return json.load(f), path
    from importlib import metadata, resources

    ref = resources.files("googleapiclient").joinpath(
        "discovery_cache/documents/compute.v1.json"
    )
    version = metadata.version("google-api-python-client")
    return json.loads(ref.read_text(encoding="utf-8")), (
        f"google-api-python-client=={version}:{ref}"
    )


class ValidationError(Exception):
    """A request or response does not match the discovery document."""

    def __init__(self, message: str, location: str = ""):
        super().__init__(message)
        self.message = message
        self.location = location


@dataclass
class Method:
    id: str
    resource: str  # discovery resource name, e.g. "regionUrlMaps"
    name: str  # method name, e.g. "patch"
    http_method: str
    path: str  # template relative to servicePath
    parameters: dict
    request: str | None
    response: str | None
    segments: list = field(default_factory=list)


class Discovery:
    def __init__(self, doc: dict, source: str = ""):
        self.doc = doc
        self.source = source
        self.schemas: dict = doc["schemas"]
        self.global_params: dict = doc.get("parameters", {})
        self.revision = doc.get("revision", "")
        self.methods: dict[str, Method] = {}
        self._routes: dict[tuple[str, int], list[Method]] = {}
        self._regex_cache: dict[str, re.Pattern] = {}
        for rname, res in doc["resources"].items():
            for mname, m in res.get("methods", {}).items():
                meth = Method(
                    id=m["id"],
                    resource=rname,
                    name=mname,
                    http_method=m["httpMethod"],
                    path=m["path"],
                    parameters=m.get("parameters", {}),
                    request=(m.get("request") or {}).get("$ref"),
                    response=(m.get("response") or {}).get("$ref"),
                )
                meth.segments = meth.path.split("/")
                self.methods[meth.id] = meth
                key = (meth.http_method, len(meth.segments))
                self._routes.setdefault(key, []).append(meth)
        # Literal segments win over parameters: sort by the number of literals.
        for lst in self._routes.values():
            lst.sort(key=lambda m: -sum(1 for s in m.segments if not s.startswith("{")))

    # ------------------------------------------------------------------ routing
    def route(self, http_method: str, rel_path: str):
        """Matches a path relative to compute/v1/. Returns (Method, params) or
        (None, None). Empty segments match parameters (reported later as a
        missing required parameter, like Google does)."""
        segs = rel_path.split("/")
        for meth in self._routes.get((http_method, len(segs)), []):
            params = {}
            for tmpl, seg in zip(meth.segments, segs):
                if tmpl.startswith("{"):
                    params[tmpl.strip("{}+")] = seg
                elif tmpl != seg:
                    break
            else:
                return meth, params
        return None, None

    def path_exists(self, rel_path: str) -> bool:
        segs = rel_path.split("/")
        for (verb, n), lst in self._routes.items():
            if n != len(segs):
                continue
            for meth in lst:
                if all(t.startswith("{") or t == s for t, s in zip(meth.segments, segs)):
                    return True
        return False

    # --------------------------------------------------------------- parameters
    def check_params(self, meth: Method, path_params: dict, query: dict) -> dict:
        """Validates path and query parameters; returns typed query values."""
        for name, value in path_params.items():
            spec = meth.parameters.get(name, {})
            if value == "":
                raise ValidationError(
                    f"Required parameter '{name}' is missing from the request path.", name
                )
            pat = spec.get("pattern")
            if pat and not self._full(pat, value):
                raise ValidationError(
                    f"Invalid value '{value}'. Values must match the following regular "
                    f"expression: '{pat}'",
                    name,
                )
        out = {}
        for name, values in query.items():
            if name.startswith("$"):
                # System parameters ($alt, $apiVersion, $fields ...) are accepted by every Google
                # API outside the method's own parameters; google-cloud-rust sends them on every call.
                continue
            spec = meth.parameters.get(name) or self.global_params.get(name)
            if spec is None and meth.name in ("list", "aggregatedList", "listNetworkEndpoints"):
                spec = LEGACY_QUERY_PARAMS.get(name)
            if spec is None or spec.get("location") == "path":
                raise ValidationError(
                    f'Invalid JSON payload received. Unknown name "{name}": Cannot bind '
                    "query parameter. Field '" + name + "' could not be found in request message.",
                    name,
                )
            value = values[-1]
            out[name] = self._coerce_param(name, spec, value)
        for name, spec in meth.parameters.items():
            if spec.get("location") == "query" and spec.get("required") and name not in out:
                raise ValidationError(f"Required parameter '{name}' is missing.", name)
        return out

    def _coerce_param(self, name: str, spec: dict, value: str):
        t, fmt = spec.get("type"), spec.get("format")
        if spec.get("enum") and value not in spec["enum"]:
            raise ValidationError(f"Invalid value for {name}: {value}", name)
        if t == "integer" or fmt in ("int64", "uint64"):
            if not _INT_STRING.match(value):
                raise ValidationError(f"Invalid value for {name}: {value}", name)
            v = int(value)
            lo = spec.get("minimum")
            if lo is not None and v < int(lo):
                raise ValidationError(f"Invalid value for {name}: {value}", name)
            if fmt in ("uint32", "uint64") and v < 0:
                raise ValidationError(f"Invalid value for {name}: {value}", name)
            return v
        if t == "boolean":
            if value.lower() not in ("true", "false", "1", "0"):
                raise ValidationError(f"Invalid value for {name}: {value}", name)
            return value.lower() in ("true", "1")
        pat = spec.get("pattern")
        if pat and not self._full(pat, value):
            raise ValidationError(f"Invalid value for {name}: {value}", name)
        return value

    def _full(self, pattern: str, value: str) -> bool:
        rx = self._regex_cache.get(pattern)
        if rx is None:
            rx = self._regex_cache[pattern] = re.compile(f"(?:{pattern})")
        return rx.fullmatch(value) is not None

    # ------------------------------------------------------------------ schemas
    def output_only(self, schema_name: str) -> set:
        props = self.schemas[schema_name].get("properties", {})
        return {k for k, p in props.items() if is_output_only(p)}

    def kind_of(self, schema_name: str) -> str | None:
        return self.schemas[schema_name].get("properties", {}).get("kind", {}).get("default")

    def validate_request(self, body: Any, schema_name: str, method_id: str, mode: str):
        """mode: insert | update | patch | action.

        Returns a cleaned copy: output-only fields are dropped on update/patch
        (clients send back what they read), nulls are dropped except on patch
        where null means "clear this field". On insert, output-only fields are
        rejected (except `kind` with the right value)."""
        v = _Validator(self, mode, method_id, response=False)
        return v.check(body, {"$ref": schema_name}, "resource")

    def validate_response(self, body: Any, schema_name: str):
        v = _Validator(self, "response", "", response=True)
        v.check(body, {"$ref": schema_name}, "response")


class _Validator:
    def __init__(self, disco: Discovery, mode: str, method_id: str, response: bool):
        self.d = disco
        self.mode = mode
        self.method_id = method_id
        self.response = response

    def fail(self, path: str, message: str):
        raise ValidationError(message, path)

    def resolve(self, schema: dict) -> tuple[dict, str]:
        name = ""
        while "$ref" in schema:
            name = schema["$ref"]
            schema = self.d.schemas[name]
        return schema, name or schema.get("id", "")

    def check(self, value: Any, schema: dict, path: str):
        schema, sname = self.resolve(schema)
        if value is None:
            if self.response:
                self.fail(path, f"null at '{path}': the fake must omit unset fields")
            return None
        t = schema.get("type")
        if t == "any" or schema.get("format") == "google.protobuf.Any":
            return value
        if t == "object" or (t is None and ("properties" in schema or "additionalProperties" in schema)):
            return self._object(value, schema, sname, path)
        if t == "array":
            if not isinstance(value, list):
                self._bad(path, "TYPE_LIST", value)
            return [
                x
                for x in (self.check(item, schema["items"], f"{path}[{i}]") for i, item in enumerate(value))
                if x is not None
            ]
        if t == "string":
            return self._string(value, schema, sname, path)
        if t == "integer":
            return self._integer(value, schema, path)
        if t == "number":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                if not (not self.response and isinstance(value, str) and _is_float(value)):
                    self._bad(path, "TYPE_DOUBLE" if schema.get("format") == "double" else "TYPE_FLOAT", value)
                return float(value)
            return value
        if t == "boolean":
            if not isinstance(value, bool):
                self._bad(path, "TYPE_BOOL", value)
            return value
        self.fail(path, f"schema at '{path}' has unsupported type {t!r}")

    def _bad(self, path: str, tname: str, value: Any):
        self.fail(path, f"Invalid value at '{path}' ({tname}), {json.dumps(value)}")

    def _object(self, value, schema, sname, path):
        if not isinstance(value, dict):
            self._bad(path, f"type.googleapis.com/compute.{sname or 'Object'}", value)
        props = schema.get("properties")
        addl = schema.get("additionalProperties")
        out = {}
        for key, item in value.items():
            if props is not None and key in props:
                sub = props[key]
                if is_output_only(sub) and not self.response:
                    if self.mode == "insert" and item is not None:
                        if key == "kind" and item == sub.get("default"):
                            continue
                        self.fail(
                            f"{path}.{key}",
                            f"Invalid value for field '{path}.{key}': {json.dumps(item)}. "
                            "Output-only field cannot be set in a request.",
                        )
                    continue  # update/patch: clients echo output-only fields back; ignored
                checked = self.check(item, sub, f"{path}.{key}")
                if checked is None and item is None and self.mode == "patch" and not self.response:
                    out[key] = None  # merge-patch: clear
                elif checked is not None:
                    out[key] = checked
            elif isinstance(addl, dict):
                checked = self.check(item, addl, f"{path}.{key}")
                if checked is not None:
                    out[key] = checked
            else:
                where = path if path != "resource" else "resource"
                self.fail(
                    f"{path}.{key}",
                    f'Invalid JSON payload received. Unknown name "{key}" at \'{where}\': '
                    "Cannot find field.",
                )
        if props and not self.response:
            for key, sub in props.items():
                req = (sub.get("annotations") or {}).get("required") or []
                if self.method_id in req and out.get(key) in (None, "", []):
                    self.fail(f"{path}.{key}", f"Required field '{path}.{key}' not specified")
        return out

    def _string(self, value, schema, sname, path):
        fmt = schema.get("format")
        if fmt in ("int64", "uint64"):
            if isinstance(value, bool):
                self._bad(path, "TYPE_" + fmt.upper(), value)
            if isinstance(value, int) and not self.response:
                value = str(value)  # proto3 JSON accepts numbers for 64-bit ints
            if not isinstance(value, str) or not _INT_STRING.match(value):
                self._bad(path, "TYPE_" + fmt.upper(), value)
            lo, hi = _INT64 if fmt == "int64" else _UINT64
            if not lo <= int(value) <= hi:
                self._bad(path, "TYPE_" + fmt.upper(), value)
            return value
        if not isinstance(value, str):
            if "enum" in schema:
                self._bad(path, f"type.googleapis.com/compute.{sname or 'Enum'}", value)
            self._bad(path, "TYPE_STRING", value)
        if "enum" in schema and value not in schema["enum"]:
            self.fail(
                path,
                f"Invalid value at '{path}' (enum; allowed values: "
                f"{', '.join(schema['enum'][:12])}{', ...' if len(schema['enum']) > 12 else ''}), "
                f"{json.dumps(value)}",
            )
        if fmt == "byte":
            try:
                base64.b64decode(value + "=" * (-len(value) % 4), altchars=b"-_" if ("-" in value or "_" in value) else None, validate=True)
            except (binascii.Error, ValueError):
                self._bad(path, "TYPE_BYTES", value)
        elif fmt == "google-datetime" and not _DATETIME.match(value):
            self._bad(path, "google.protobuf.Timestamp", value)
        elif fmt == "google-duration" and not _DURATION.match(value):
            self._bad(path, "google.protobuf.Duration", value)
        pat = schema.get("pattern")
        if pat and value and not self.d._full(pat, value):
            self.fail(
                path,
                f"Invalid value for field '{path}': '{value}'. Must be a match of regex '{pat}'",
            )
        return value

    def _integer(self, value, schema, path):
        fmt = schema.get("format", "int32")
        tname = "TYPE_" + fmt.upper()
        if isinstance(value, bool):
            self._bad(path, tname, value)
        if isinstance(value, float) and value.is_integer() and not self.response:
            value = int(value)
        if isinstance(value, str) and not self.response and _INT_STRING.match(value):
            value = int(value)  # proto3 JSON accepts quoted integers
        if not isinstance(value, int):
            self._bad(path, tname, value)
        lo, hi = _UINT32 if fmt == "uint32" else _INT32
        if not lo <= value <= hi:
            self._bad(path, tname, value)
        return value


def _is_float(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False
