"""OpenAPI fragments shared by the routes."""

from typing import Any

from pydantic import BaseModel


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": text}
    for status, text in {
        400: "the body could not be parsed",
        401: "missing or unknown API key",
        404: "no such resource in your tenant",
        409: "the resource is not in a state that allows this",
        413: "the upload is over the size limit",
        415: "the file is not of an accepted format",
        422: "the request is invalid",
        429: "over a quota of the tenant (see Retry-After)",
    }.items()
}


def multipart_file(description: str) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {"file": {"type": "string", "format": "binary", "description": description}},
                    }
                }
            },
        }
    }
