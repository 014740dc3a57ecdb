"""The one exception type of the local lab."""

from __future__ import annotations


class LabError(Exception):
    """A lab step failed; ``message`` says what, ``fix`` says what to do about it."""

    def __init__(self, message: str, fix: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        if self.fix:
            return f"{self.message}\n  fix: {self.fix}"
        return self.message
