"""One error hierarchy, mapped to the CLI's exit codes.

Exit codes: 0 ok, 1 a plan that does not fit / a run that failed on a host,
2 invalid input (nothing touched), 130 interrupted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the user's input: where, what, and how to fix it."""

    file: str
    path: str
    message: str
    fix: str = ""
    line: int | None = None

    def where(self) -> str:
        loc = self.file
        if self.line is not None:
            loc += f":{self.line}"
        return f"{loc}: {self.path}" if self.path else loc

    def render(self) -> str:
        text = f"{self.where()}: {self.message}"
        if self.fix:
            text += f"\n  fix: {self.fix}"
        return text

    def as_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "path": self.path,
            "line": self.line,
            "message": self.message,
            "fix": self.fix,
        }


class ProvisionError(Exception):
    """Base of every error the CLI turns into a message and an exit code."""

    exit_code = EXIT_FAILED


@dataclass
class InvalidInput(ProvisionError):
    """The user's input is wrong; nothing was touched. Exit code 2."""

    problems: list[Problem] = field(default_factory=list)
    exit_code = EXIT_INVALID

    def __str__(self) -> str:
        return "\n".join(p.render() for p in self.problems)


class PlanDoesNotFit(ProvisionError):
    """A valid plan whose memory does not fit. Exit code 1."""

    exit_code = EXIT_FAILED


class RunFailed(ProvisionError):
    """An Ansible run failed on at least one host. Exit code 1."""

    exit_code = EXIT_FAILED
