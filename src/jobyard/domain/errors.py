"""The one exception tree of jobyard.

    JobyardError                 root; never raised itself
    ├── Invalid                  the request is well-formed but a value is wrong (422)
    ├── Unauthenticated          no credential, or one that is unknown, revoked or expired (401)
    ├── Forbidden                the caller is known but its role does not allow this (403)
    ├── NotFound                 no such object in the caller's organization (404)
    ├── Conflict                 the object exists but its state forbids this (409)
    │   └── InvalidTransition    a state machine refuses the move
    ├── TooLarge                 a body or a value exceeds a limit (413)
    ├── RateLimited              too many attempts; retry later (429)
    └── Unavailable              a service jobyard depends on did not answer (503)

The API maps each class to a status code in one table; the CLI maps them to exit
codes; each dialect maps them to its platform's error shape.
"""

from __future__ import annotations

from typing import Any


class JobyardError(Exception):
    """Root of every error jobyard raises on purpose."""

    status_code = 500
    title = "Internal error"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class Invalid(JobyardError):
    """Raised when a value breaks a rule; ``field`` names the offending value."""

    status_code = 422
    title = "Invalid request"

    def __init__(self, detail: str, field: str | None = None, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.field = field


class Unauthenticated(JobyardError):
    """Raised when a request carries no usable credential."""

    status_code = 401
    title = "Unauthenticated"


class Forbidden(JobyardError):
    """Raised when the caller's role does not allow the action."""

    status_code = 403
    title = "Forbidden"


class NotFound(JobyardError):
    """Raised when an object does not exist in the caller's organization."""

    status_code = 404
    title = "Not found"


class Conflict(JobyardError):
    """Raised when the state of an object forbids the action."""

    status_code = 409
    title = "Conflict"


class InvalidTransition(Conflict):
    """Raised when a state machine has no edge for the requested move."""

    title = "Invalid transition"


class TooLarge(JobyardError):
    """Raised when a body or value exceeds a configured limit."""

    status_code = 413
    title = "Too large"


class RateLimited(JobyardError):
    """Raised when a caller exceeded an attempt budget."""

    status_code = 429
    title = "Too many requests"


class Unavailable(JobyardError):
    """Raised when a service jobyard needs for this request (the sign-in provider) did not
    answer or answered nonsense; retrying later may work."""

    status_code = 503
    title = "Service unavailable"
