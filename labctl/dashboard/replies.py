"""How a use case's refusal reaches a page, the instructor's or a student's:
a usage error is the request's fault (400), a lab another labctl holds is a
conflict to wait out (409), anything else the lab's own failure (500)."""

from __future__ import annotations

from starlette.responses import JSONResponse

from labctl.errors import LabctlError, UsageError


def refusal(exc: LabctlError) -> JSONResponse:
    if isinstance(exc, UsageError):
        status = 400
    elif "held by" in exc.message or "busy" in exc.message:
        status = 409
    else:
        status = 500
    return JSONResponse({"error": exc.message, "hint": exc.hint}, status_code=status)
