"""The API's one error shape: {"error": {"code": "...", "message": "..."}}."""

from __future__ import annotations

from starlette.responses import JSONResponse


class ApiError(Exception):
    """A refusal the client caused; answered with `status` and the error shape."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def error_response(code: str, message: str, status: int, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)
