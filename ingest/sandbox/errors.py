"""The three error shapes the public API uses, and which endpoint uses which.

- nested ``{"error": {"code", "message", "details"}, "request_id"}``: the API's global
  handler (README); used by ``/uploads/*`` and the stream endpoints, whose spec entries
  declare no error body of their own;
- FastAPI's ``{"detail": [{"loc", "msg", "type"}]}``: every 422 validation error, as every
  operation in the spec declares ``HTTPValidationError`` for 422;
- flat ``UserFilesError`` ``{"error", "message", "details"}``: what the spec declares for
  ``GET /user-files`` and ``GET /user-files/{image_id}``.

Handlers raise :class:`ApiError` or :class:`ValidationFailed`; the app renders them in the
route's style.
"""

from __future__ import annotations

from typing import Any, Literal

Style = Literal["nested", "flat"]


class ApiError(Exception):
    """An HTTP error answer: status, a stable UPPER_SNAKE code, a message for people."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.headers = headers or {}

    def body(self, style: Style, request_id: str) -> dict[str, Any]:
        if style == "flat":
            return {"error": self.code, "message": self.message, "details": self.details}
        return {
            "error": {"code": self.code, "message": self.message, "details": self.details},
            "request_id": request_id,
        }


class ValidationFailed(Exception):
    """422 in FastAPI's shape: a list of ``{loc, msg, type}``."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(e["msg"] for e in errors))
        self.errors = errors

    @classmethod
    def one(cls, loc: list[str | int], msg: str, type_: str) -> ValidationFailed:
        return cls([{"loc": loc, "msg": msg, "type": type_}])

    def body(self) -> dict[str, Any]:
        return {"detail": self.errors}


def missing(loc: list[str | int]) -> ValidationFailed:
    return ValidationFailed.one(loc, "Field required", "missing")


def unsupported(loc: list[str | int], message: str) -> ValidationFailed:
    """A file type outside the supported formats: 422, as the spec declares for every upload
    operation (not 415, which it never mentions)."""
    return ValidationFailed.one(loc, message, "unsupported_file_type")


def not_found(what: str, ident: str) -> ApiError:
    return ApiError(404, "NOT_FOUND", f"{what} {ident} not found", {"id": ident})
