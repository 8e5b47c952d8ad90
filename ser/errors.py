"""The one error type: input that can't be analysed, with the HTTP status it earns.

Raised where the problem is found (decoding, form parsing, limits); the server turns it
into the API's one error body (`serving.errors`), the command line into a message.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass
class InputError(ValueError):
    code: str  # stable, machine-readable: "too_long", "unsupported_format", ...
    message: str  # for people: says what was wrong and what is accepted
    status: int = 400

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class WorkLimit:
    """When a request's work must stop: its deadline passed or its client went away.

    Checked between decoded blocks and between stages, so abandoned or overdue work ends
    within a block (about a second of 48 kHz audio) instead of running to the end.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.client_gone = False

    def check(self) -> None:
        if self.client_gone:
            raise InputError("client_disconnected", "the client went away before the answer", 400)
        if time.monotonic() > self.deadline:
            raise InputError("deadline_exceeded", f"the server could not finish within {self.seconds:g} s; "
                             "retry later or send a shorter recording", 503)  # fmt: skip
