"""specs/openapi.yaml against the HTTP server: the served routes match the
document, and live answers match its schemas.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, Optional

import cra
import httpx
import pytest
import yaml
from cra.server.app import ROUTERS
from server_helpers import (
    OPENAPI,
    SUPPORT,
    ZERO_UUID,
    LiveServer,
    TestClient,
    execute_body,
    make_app,
    new_session,
    resolved,
)
from starlette.routing import WebSocketRoute


def _base_type(schema: dict[str, Any]) -> Optional[str]:
    if "anyOf" in schema:
        types = [s.get("type") for s in schema["anyOf"] if s.get("type") != "null"]
        return types[0] if types else None
    t = schema.get("type")
    return t if isinstance(t, str) else None


def _skeleton(doc: dict[str, Any]) -> dict[str, Any]:
    """What an API's description says about each operation, without prose."""
    out = {}
    default_security = doc.get("security")
    for path, item in doc["paths"].items():
        shared = item.get("parameters", [])
        for method, op in item.items():
            if method == "parameters":
                continue
            params = {
                (p["name"], p["in"]): (p.get("required", False), _base_type(p["schema"]))
                for p in [*shared, *op.get("parameters", [])]
            }
            body = op.get("requestBody")
            if body and "$ref" in body:
                body = doc["components"]["requestBodies"][body["$ref"].rsplit("/", 1)[1]]
            security = op.get("security", default_security)
            out[f"{method.upper()} {path}"] = {
                "parameters": params,
                "body": sorted(body["content"]) if body else None,
                "body_required": bool(body and body.get("required")),
                "statuses": sorted(op["responses"]),
                "security": sorted(k for s in security or [] for k in s),
            }
    return out


def test_openapi_yaml_matches_the_served_routes(tmp_path: Path) -> None:
    written = yaml.safe_load(OPENAPI.read_text(encoding="utf-8"))
    app = make_app(tmp_path)
    served = app.openapi()
    assert _skeleton(written) == _skeleton(served)
    assert written["components"]["securitySchemes"] == served["components"]["securitySchemes"]
    sockets = {r.path for router in ROUTERS for r in router.routes if isinstance(r, WebSocketRoute)}
    assert sockets == set(written["x-websockets"])
    with TestClient(app) as c:
        for path in sockets:  # served, and answering
            with c.websocket_connect(f"{path}?session_id={ZERO_UUID}") as ws:
                assert ws.receive_json()["error"]["code"] == "SESSION_NOT_FOUND"
    assert written["info"]["version"] == cra.__version__


def test_answers_match_the_openapi_schemas(live: LiveServer, a: httpx.Client) -> None:
    """A few real answers checked against the written schemas (schemathesis
    below checks many more, generated ones)."""
    jsonschema_rs = pytest.importorskip("jsonschema_rs")
    doc = yaml.safe_load(OPENAPI.read_text(encoding="utf-8"))

    def check(name: str, value: Any) -> None:
        schema = {"$ref": f"#/components/schemas/{name}", "components": doc["components"]}
        jsonschema_rs.validator_for(schema).validate(value)

    sid = new_session(a)
    check("Session", a.get(f"/v1/sessions/{sid}").json())
    res = resolved(a, sid)
    check("Resolution", res)
    r = a.post(
        "/v1/execute",
        json=execute_body(
            sid, res["resolution_id"], "refund.issue", {"order_id": "o", "amount": 1}
        ),
    )
    check("ExecuteResponse", r.json())
    check("PendingApprovals", a.get("/v1/approvals").json())
    check("TraceEvents", a.get(f"/v1/traces/{sid}").json())
    check("ChainVerification", a.get(f"/v1/traces/{sid}/verify").json())
    check("AtlasList", a.get("/v1/atlases").json())
    check("AtlasManifest", a.get(f"/v1/atlases/{SUPPORT}").json())
    check("Error", a.get(f"/v1/traces/{uuid.uuid4()}").json())
    check("SessionList", a.get("/v1/sessions").json())
    with live.client(None) as anon:
        check("Health", anon.get("/v1/health").json())
