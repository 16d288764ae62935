"""Google's JSON error shape, as Compute returns it."""

from __future__ import annotations

STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "ALREADY_EXISTS",
    412: "FAILED_PRECONDITION",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
}


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, status: str | None = None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.status = status or STATUS.get(code, "UNKNOWN")

    def body(self) -> dict:
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "status": self.status,
                "errors": [{"message": self.message, "domain": "global", "reason": self.reason}],
            }
        }


def invalid(message: str) -> ApiError:
    return ApiError(400, "invalid", message)


def invalid_field(path: str, value, why: str) -> ApiError:
    return ApiError(400, "invalid", f"Invalid value for field '{path}': '{value}'. {why}")


def not_found(key: str) -> ApiError:
    return ApiError(404, "notFound", f"The resource '{key}' was not found")


def already_exists(key: str) -> ApiError:
    return ApiError(409, "alreadyExists", f"The resource '{key}' already exists")


def not_ready(key: str) -> ApiError:
    return ApiError(400, "resourceNotReady", f"The resource '{key}' is not ready")


def fingerprint_mismatch(what: str = "fingerprint") -> ApiError:
    return ApiError(
        412,
        "conditionNotMet",
        f"Supplied {what} does not match current metadata {what}.",
    )


def in_use(singular: str, key: str, user: str) -> ApiError:
    return ApiError(
        400,
        "resourceInUseByAnotherResource",
        f"The {singular} resource '{key}' is already being used by '{user}'",
    )


def check_error_shape(body) -> str | None:
    """Returns a complaint when `body` is not Google's error shape."""
    if not isinstance(body, dict) or set(body) != {"error"}:
        return "error body must be {'error': {...}}"
    e = body["error"]
    if not isinstance(e, dict):
        return "error must be an object"
    if not isinstance(e.get("code"), int) or not isinstance(e.get("message"), str):
        return "error.code (int) and error.message (string) are required"
    if not isinstance(e.get("status"), str):
        return "error.status is required"
    errs = e.get("errors")
    if not isinstance(errs, list) or not errs:
        return "error.errors must be a non-empty list"
    for x in errs:
        if not isinstance(x, dict) or not all(isinstance(x.get(k), str) for k in ("message", "domain", "reason")):
            return "each error.errors[] needs message, domain, reason strings"
    extra = set(e) - {"code", "message", "status", "errors", "details"}
    if extra:
        return f"unexpected keys in error: {sorted(extra)}"
    return None
