"""The one error type: input that can't be analysed, with the HTTP status it earns.

Raised where the problem is found (decoding, form parsing, limits); the server turns it
into the API's one error body (`serving.errors`), the command line into a message.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class InputError(ValueError):
    code: str  # stable, machine-readable: "too_long", "unsupported_format", ...
    message: str  # for people: says what was wrong and what is accepted
    status: int = 400

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"
