"""Typed domain errors. Transports map them to status codes in one place each."""

from __future__ import annotations


class MemobaseError(Exception):
    """Base of every error that carries a message meant for the caller."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(MemobaseError):
    """The request is well-formed but a value is not acceptable."""


class MalformedRequest(InvalidArgument):
    """The request does not fit the schema (an id that is not a UUID, a required field missing)."""


class NotFound(MemobaseError):
    pass


class AlreadyExists(MemobaseError):
    pass


class FailedPrecondition(MemobaseError):
    pass


class Unauthenticated(MemobaseError):
    pass


class PermissionDenied(MemobaseError):
    pass


class ResourceExhausted(MemobaseError):
    pass


class Unavailable(MemobaseError):
    """A dependency (database, cache, model provider) cannot be reached."""


class NotImplementedYet(MemobaseError):
    """The route is part of the contract but its behaviour has not landed yet."""
