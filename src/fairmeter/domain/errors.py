"""One tree of errors with stable codes; the API maps each code to an HTTP status."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FieldError:
    """What is wrong with one field, located by a JSON Pointer (RFC 6901)."""

    pointer: str
    detail: str
    code: str = "invalid"

    def as_dict(self) -> dict[str, str]:
        return {"pointer": self.pointer, "detail": self.detail, "code": self.code}


class FairmeterError(Exception):
    code = "error"
    title = "Error"

    def __init__(self, detail: str, *, errors: tuple[FieldError, ...] = (), **extra: object):
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.extra = extra


class InvalidInput(FairmeterError):
    code = "invalid_input"
    title = "The request is not valid"


class MalformedBody(FairmeterError):
    code = "malformed_body"
    title = "The request body could not be parsed"


class PayloadTooLarge(FairmeterError):
    code = "payload_too_large"
    title = "The request is too large"


class NotFound(FairmeterError):
    code = "not_found"
    title = "Not found"


class Conflict(FairmeterError):
    code = "conflict"
    title = "Conflict"


class AlreadyExists(Conflict):
    code = "already_exists"
    title = "Already exists"


class InUse(Conflict):
    code = "in_use"
    title = "Still in use"


class IdempotencyConflict(Conflict):
    code = "idempotency_conflict"
    title = "The idempotency key was used for a different call"


class Unauthorized(FairmeterError):
    code = "unauthorized"
    title = "Missing or invalid API key"


class Forbidden(FairmeterError):
    code = "forbidden"
    title = "The API key's scope does not allow this"


class UnsupportedMediaType(FairmeterError):
    code = "unsupported_media_type"
    title = "Unsupported media type"


@dataclass(frozen=True)
class Problems:
    """Collects field errors so a parser can report all of them at once."""

    items: list[FieldError] = field(default_factory=list)

    def add(self, pointer: str, detail: str, code: str = "invalid") -> None:
        self.items.append(FieldError(pointer, detail, code))

    def raise_if_any(self, message: str = "The request has invalid fields") -> None:
        if self.items:
            raise InvalidInput(message, errors=tuple(self.items))
