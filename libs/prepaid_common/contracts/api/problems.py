"""The one error body of every HTTP API: RFC 9457 problem details, with our ``code``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class FieldProblem(BaseModel):
    """What is wrong with one field of a request (a 422 lists one per field)."""

    loc: list[str | int] = Field(description="Where: body, query or path, then the field")
    msg: str
    type: str
    # Only a short value is echoed back, never a large or non-finite one.
    input: Any = None


class Problem(BaseModel):
    """An error answer (``application/problem+json``)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "about:blank",
                    "title": "Not Found",
                    "status": 404,
                    "detail": "account shop:12 does not exist",
                    "code": "not_found",
                }
            ]
        }
    )

    type: str = Field(default="about:blank", description="A URI naming the kind of problem")
    title: str = Field(description="The status's phrase")
    status: int
    detail: str = Field(description="What went wrong, for a person")
    code: str = Field(description="What went wrong, for a program: stable")
    errors: list[FieldProblem] | None = Field(
        default=None, description="With 422: what is wrong with each field"
    )
