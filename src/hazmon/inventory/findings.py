"""What validation reports: findings with a rule ID, a severity and a place in a file."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path


class Severity(StrEnum):
    # The data is wrong or contradicts the notice: nothing downstream may run.
    ERROR = "error"
    # A site condition the notice requires is not met yet: the enterprise is not ready,
    # but the inventory is a true description of it and stays usable.
    BLOCKER = "blocker"
    # Worth a look; changes nothing (for example a bandwidth never measured).
    WARNING = "warning"


PathPart = str | int
FieldPath = tuple[PathPart, ...]


def format_path(path: FieldPath) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


@dataclass(frozen=True, slots=True)
class Finding:
    rule: str
    severity: Severity
    message: str
    file: Path
    line: int | None
    path: str
    enterprise: str | None = None

    def render(self, root: Path | None = None) -> str:
        where = self.file
        if root is not None and self.file.is_relative_to(root):
            where = self.file.relative_to(root)
        loc = f"{where}:{self.line}" if self.line else f"{where}"
        field_ = f" [{self.path}]" if self.path else ""
        return f"{loc}: {self.severity} {self.rule}{field_}: {self.message}"

    def as_dict(self) -> dict[str, object]:
        return {
            "rule": self.rule,
            "severity": str(self.severity),
            "message": self.message,
            "file": str(self.file),
            "line": self.line,
            "path": self.path,
            "enterprise": self.enterprise,
        }


@dataclass(slots=True)
class Report:
    findings: list[Finding] = field(default_factory=list)

    def of(self, severity: Severity) -> list[Finding]:
        return [f for f in self.findings if f.severity is severity]

    @property
    def errors(self) -> list[Finding]:
        return self.of(Severity.ERROR)

    @property
    def blockers(self) -> list[Finding]:
        return self.of(Severity.BLOCKER)

    @property
    def warnings(self) -> list[Finding]:
        return self.of(Severity.WARNING)

    @property
    def ok(self) -> bool:
        return not self.errors

    def for_enterprise(self, code: str) -> list[Finding]:
        return [f for f in self.findings if f.enterprise == code]


class InventoryError(Exception):
    """Raised by consumers that must not run on an invalid inventory."""

    def __init__(self, report: Report, root: Path | None = None) -> None:
        self.report = report
        lines = [f.render(root) for f in report.errors]
        super().__init__(
            f"the inventory has {len(report.errors)} error(s); nothing was applied:\n" + "\n".join(lines)
        )
