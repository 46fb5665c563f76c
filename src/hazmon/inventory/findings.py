"""What validation reports: findings with a rule ID, a severity and a place in a file."""

from __future__ import annotations

import unicodedata
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


# Control characters (C0, DEL, C1) written as escapes: a finding is one line of a terminal, and
# text quoted from a file must neither break that line nor move the cursor or colour the screen.
_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}


def _shown(text: str) -> str:
    """`text` as one printable line of UTF-8: controls escaped; so are invisible format characters
    (a byte-order mark in a key, a right-to-left override that would reorder the line on screen) and
    the lone surrogates a file name that is not UTF-8 decodes to (they cannot be written out)."""
    text = text.translate(_CONTROLS)
    if text.isascii():
        return text
    text = "".join(f"\\u{ord(c):04x}" if unicodedata.category(c) == "Cf" else c for c in text)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


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
        loc = f"{_shown(str(where))}:{self.line}" if self.line else _shown(str(where))
        field_ = f" [{_shown(self.path)}]" if self.path else ""
        return f"{loc}: {self.severity} {self.rule}{field_}: {_shown(self.message)}"

    def as_dict(self) -> dict[str, object]:
        # JSON escapes controls itself; only a file name that is not UTF-8 needs care.
        file = str(self.file)
        return {
            "rule": self.rule,
            "severity": str(self.severity),
            "message": self.message,
            "file": file if file.isascii() else file.encode("utf-8", "backslashreplace").decode("utf-8"),
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
