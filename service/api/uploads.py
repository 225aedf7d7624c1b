"""`POST /v1/predict/upload`: image files as multipart/form-data (HTML forms, `curl -F`).

The files go through the same dataplane as `/v1/predict`'s base64 images (each file's
name as its `id`), so limits, errors, preprocessing and the response are the same by
construction.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response, UploadFile
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from service.api import dataplane
from service.api.forms import json_scalar, strict_form
from service.api.schemas import THRESHOLD_DESCRIPTION, PredictResponse
from service.errors import InvalidImageError
from service.web.bounds import checked_id, echo
from service.web.errors import documented_errors
from service.web.guards import RecognizerDep, require_multipart
from service.web.responses import json_response

router = APIRouter()
FORM_BODY = {
    "required": True,
    "content": {"multipart/form-data": {"schema": {"$ref": "#/components/schemas/UploadForm"}}},
}


class UploadForm(BaseModel):
    # As strict as the JSON body (service/api/forms.py): `top_k=3.0` or `topk=3` is a 422.
    model_config = ConfigDict(extra="forbid", strict=True)

    file: list[UploadFile] = Field(
        description="One or more image files: repeat the `file` field for more."
    )
    top_k: Annotated[int, BeforeValidator(json_scalar)] = Field(
        default=3, ge=1, le=10, description="How many best digits to list."
    )
    return_preprocessed: Annotated[bool, BeforeValidator(json_scalar)] = Field(
        default=False, description="Also return the 28×28 image the model saw (base64 PNG)."
    )
    not_a_digit_threshold: Annotated[float | None, BeforeValidator(json_scalar)] = Field(
        default=None, gt=0, le=1, description=THRESHOLD_DESCRIPTION
    )


@router.post(
    "/v1/predict/upload",
    tags=["model"],
    summary="Recognize the digit in uploaded image files (multipart/form-data)",
    dependencies=[Depends(require_multipart)],
    response_model=PredictResponse,  # for the OpenAPI: the body is already JSON
    # The form is read by `strict_form`, not FastAPI: documented here instead.
    openapi_extra={"requestBody": FORM_BODY},
    responses=documented_errors(
        413,
        415,
        422,
        500,
        503,
        s415="Body is not sent as `multipart/form-data`.",
        s422="Invalid request or file; `index` names the offending file.",
    ),
)
async def predict_upload(
    recognizer: RecognizerDep,
    form: Annotated[UploadForm, Depends(strict_form(UploadForm))],
) -> Response:
    """The response of `/v1/predict`, each prediction's `id` being the file's name; the same
    limits (images per request, body size, pixels per image)."""
    files, names = [], []
    for index, upload in enumerate(form.file):
        # A file name is the prediction's id: at most ID_MAX_LENGTH characters, like any id.
        name = checked_id(upload.filename, what=f"file {index}'s name", index=index)
        data = await upload.read()
        if not data:
            shown = echo(upload.filename) if upload.filename else "(no name)"
            raise InvalidImageError(f"file {shown} is empty (was a file chosen?)", index=index)
        files.append(data)
        names.append(name)
    return json_response(
        await dataplane.predict_encoded(
            recognizer,
            files,
            names,
            form.top_k,
            form.return_preprocessed,
            threshold=form.not_a_digit_threshold,
        )
    )
