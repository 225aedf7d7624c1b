"""The app's OpenAPI document, made to tell the truth about errors and to generate clients.

FastAPI's default document has gaps a client generator turns into wrong code: a
`422 HTTPValidationError` shape the app never sends (one handler answers every
error as `ErrorResponse`), no 500 or 413 on most operations, operation ids like
`predict_v1_predict_post`, and no schema for bodies read raw (the V2 infer body).
`install_openapi` fixes these once, when the document is first built, for every
route anyone adds.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

from fastapi import FastAPI
from fastapi.responses import FileResponse
from pydantic.json_schema import models_json_schema

from service.api.routes import STATIC_DIR
from service.api.uploads import UploadForm
from service.gateway.table import OPERATIONS
from service.v2.schemas import OPENAPI_MODELS
from service.web.errors import ERROR_DESCRIPTIONS, ErrorResponse, V2ErrorResponse

COMPONENTS = "#/components/schemas/"
# A real MNIST test digit (a 7), 28×28 grey PNG: examples that work when pasted.
SEVEN_PNG_BASE64 = (
    "iVBORw0KGgoAAAANSUhEUgAAABwAAAAcCAAAAABXZoBIAAAAwUlEQVR42mNgGDaAEUKFpD77sfTFHeyS9xQYGBg+"
    "X4UKPuk6w8DAwMDAAuGm6l/TMnSweCzLwPDntSTDozPIOhkYGBgYBA3PmDIw/Lh1XShnGi5nBP+9KIRLTuzl/2Ao"
    "kwlDMlv0/U1cGq1//rPD6fHWf7tZcclxnv1hhVNj3b9tOOW8f3+wxCUnfPffMlxyzKf/3VbGJan2758vLjn5B/+K"
    "GXF78Z8JLjnbT+iSSGFrw8Nw9wuKJAsy56LzO+ITGABpETyQcCy90wAAAABJRU5ErkJggg=="
)
_V2_INFER_EXAMPLE = {
    "id": "my-seven",
    "inputs": [{"name": "images", "datatype": "BYTES", "shape": [1], "data": [SEVEN_PNG_BASE64]}],
}
# JSON request examples by (method, path), shown in /docs and in openapi.md's curl lines.
REQUEST_EXAMPLES: dict[tuple[str, str], Any] = {
    ("post", "/v1/predict"): {
        "images": [{"id": "my-seven", "data": SEVEN_PNG_BASE64}],
        "top_k": 3,
    },
    ("post", "/v2/models/{model_name}/infer"): _V2_INFER_EXAMPLE,
    ("post", "/v2/models/{model_name}/versions/{model_version}/infer"): _V2_INFER_EXAMPLE,
}
_FRAMEWORK_ERRORS = ("HTTPValidationError", "ValidationError")


def install_openapi(app: FastAPI) -> None:
    """Make `app.openapi()` (and so /docs and /openapi.json) return the tidied document, and
    serve /docs: Swagger UI from the package's static files (create the app with
    `docs_url=None`), not FastAPI's page, which loads it from a CDN at a floating version
    and runs an inline script that the Content-Security-Policy would refuse."""
    build = app.openapi

    async def docs() -> FileResponse:
        return FileResponse(STATIC_DIR / "docs.html")

    app.add_api_route("/docs", docs, include_in_schema=False)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = tidy_openapi(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def tidy_openapi(document: dict[str, Any]) -> dict[str, Any]:
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    # Bodies read raw or by our own parsers, which FastAPI cannot see.
    models = (*OPENAPI_MODELS, UploadForm, ErrorResponse, V2ErrorResponse)
    _, definitions = models_json_schema(
        [(model, "validation") for model in models], ref_template=COMPONENTS + "{model}"
    )
    for name, schema in definitions.get("$defs", {}).items():
        schemas.setdefault(name, schema)
    _name_operations(document)
    _mark_binary(schemas)
    protocols = {(op.method.lower(), op.path): op.rules.protocol for op in OPERATIONS}
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            # Each operation's errors in its protocol's shape (its row in the table).
            v2 = protocols[(method, path)] == "v2"
            error = {"$ref": COMPONENTS + ("V2ErrorResponse" if v2 else "ErrorResponse")}
            _fix_errors(operation, error, v2=v2)
            example = REQUEST_EXAMPLES.get((method, path))
            content = operation.get("requestBody", {}).get("content", {})
            if example is not None and "application/json" in content:
                content["application/json"].setdefault("example", example)
    text = json.dumps(document.get("paths", {}))
    for name in _FRAMEWORK_ERRORS:
        if f'"{COMPONENTS}{name}"' not in text:
            schemas.pop(name, None)
    return document


def _name_operations(document: dict[str, Any]) -> None:
    """Operation ids from the route functions' names (`predict`, `infer`...), when unique:
    generated clients name their functions after them. FastAPI's ids are the name, the
    path and the method, so the name is what is left once the other two are cut off."""
    names: dict[tuple[str, str], str] = {}
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            suffix = re.sub(r"\W", "_", path) + "_" + method
            operation_id = operation.get("operationId", "")
            if operation_id.endswith(suffix) and len(operation_id) > len(suffix):
                names[path, method] = operation_id[: -len(suffix)]
    counts = Counter(names.values())
    for (path, method), name in names.items():
        if counts[name] == 1:
            document["paths"][path][method]["operationId"] = name


def _mark_binary(node: Any) -> None:
    """Files are `contentMediaType` strings in OpenAPI 3.1; generators such as
    openapi-python-client know them by 3.0's `format: binary`, and would send them as text."""
    if isinstance(node, dict):
        if node.get("type") == "string" and "contentMediaType" in node:
            node.setdefault("format", "binary")
        for value in node.values():
            _mark_binary(value)
    elif isinstance(node, list):
        for value in node:
            _mark_binary(value)


def _fix_errors(operation: dict[str, Any], error: dict[str, str], *, v2: bool) -> None:
    responses = operation.setdefault("responses", {})
    for status, response in list(responses.items()):
        for media in response.get("content", {}).values():
            if media.get("schema", {}).get("$ref") != COMPONENTS + "HTTPValidationError":
                continue
            if v2:
                # /v2 routes take only string path parameters (nothing for FastAPI to
                # refuse) and report bad bodies as 400, as the protocol says.
                del responses[status]
                break
            media["schema"] = dict(error)
            response["description"] = "Invalid request; the message says what is wrong."
    if "requestBody" in operation and "413" not in responses:
        responses["413"] = _error_response(error, ERROR_DESCRIPTIONS[413])
    if "500" not in responses:
        responses["500"] = _error_response(error, ERROR_DESCRIPTIONS[500])
    operation["responses"] = dict(sorted(responses.items()))


def _error_response(error: dict[str, str], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": dict(error)}}}
