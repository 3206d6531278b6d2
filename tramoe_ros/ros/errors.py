"""Errors of the ROS layer: a node that cannot start, invalid parameters, a malformed message."""
from __future__ import annotations


class NodeStartupError(RuntimeError):
    """A node cannot start (invalid parameters, a missing or corrupt model, a device that does not open).

    The message says what is wrong and how to fix it; the console script prints it and exits non-zero.
    """


class ParameterError(NodeStartupError):
    """One or more node parameters are missing, of the wrong type or out of range."""


class MalformedMessage(ValueError):
    """An incoming message that cannot be used; the node drops it and counts it under `reason`."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


MAX_LOGGED_DETAIL_CHARS = 300


def bounded(text: str, limit: int = MAX_LOGGED_DETAIL_CHARS) -> str:
    """`text` cut to `limit` characters, saying how long it was: a message's fields or a parameter (an encoding, a
    joint name, an instruction) can be of any length, a log line should not be."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"
