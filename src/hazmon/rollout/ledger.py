"""The rollout ledger: every enterprise's progress, gate by gate.

One JSON object per line, appended under an exclusive lock, never rewritten: when, which run and
batch, which host of which enterprise, which gate (preflight, rollout, verify, ...), passed or
failed, and why. A line the control node did not finish writing (it died mid-write) is reported
with its file and line and skipped by every reader, never fatal; the next append starts on a line
of its own. Ansible writes it through the callback plugin `hazmon_ledger`
(plugins/callback/), `hazmon rollout` reads it to summarise a batch and to continue where the
last run stopped. Reasons never carry a secret: a task with no_log is reported by its name only.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

ENV_LEDGER = "HAZMON_LEDGER"
ENV_RUN = "HAZMON_RUN_ID"
DEFAULT_DIR = Path("/var/lib/hazmon/ledger")
REASON_MAX = 600  # a reason is a sentence for the ops team, not a log


class Gate(StrEnum):
    PROVINCE = "province"
    PREFLIGHT = "preflight"
    ROLLOUT = "rollout"
    VERIFY = "verify"
    DECOMMISSION = "decommission"


# A gate passed means the enterprise reached this stage (the lifecycle in hazmon.inventory.model).
STAGE_BY_GATE = {Gate.PREFLIGHT: "ready", Gate.ROLLOUT: "provisioned", Gate.VERIFY: "verified",
                 Gate.DECOMMISSION: "decommissioned"}
GATE_ORDER = (Gate.PREFLIGHT, Gate.ROLLOUT, Gate.VERIFY)


class Status(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    UNREACHABLE = "unreachable"
    SUMMARY = "summary"  # Ansible's per-host recap of a run (ok/changed/failed counts)
    STOPPED = "stopped"  # the run stopped after a wave (no enterprise: the reason is the run's)


@dataclass
class Record:
    run: str
    gate: str
    status: str
    host: str
    enterprise: str | None = None  # unified code
    slug: str | None = None
    batch: int | None = None
    task: str | None = None
    reason: str | None = None
    check: bool = False
    counts: dict[str, int] = field(default_factory=dict)  # SUMMARY records only
    ts: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def as_json(self) -> str:
        data = {k: v for k, v in asdict(self).items() if v not in (None, {}, False)}
        return json.dumps(data, ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, line: str) -> Record:
        data = json.loads(line)
        if not isinstance(data, dict):
            raise ValueError(f"a JSON {type(data).__name__}, not an object")
        missing = [k for k in REQUIRED if not isinstance(data.get(k), str)]
        if missing:
            raise ValueError(f"no {', '.join(missing)}")
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


REQUIRED = ("run", "gate", "status", "host")
EXCERPT_MAX = 80  # of a skipped line, in its report


@dataclass(frozen=True)
class SkippedLine:
    """A ledger line no reader can use: reported (file, line, what), then skipped."""

    path: Path
    line: int
    excerpt: str
    why: str
    torn: bool  # the file's last line, without its newline: a write the control node did not finish

    def __str__(self) -> str:
        what = ("the last line is cut short (the control node stopped while writing it?)" if self.torn
                else "not a ledger record")
        return f"{self.path}:{self.line}: skipped: {what} ({self.why}): {self.excerpt!r}"


def ledger_path(inventory_name: str, explicit: str | os.PathLike[str] | None = None) -> Path:
    """$HAZMON_LEDGER, else one file per inventory under /var/lib/hazmon/ledger."""
    if explicit:
        return Path(explicit)
    if os.environ.get(ENV_LEDGER):
        return Path(os.environ[ENV_LEDGER])
    return DEFAULT_DIR / f"{inventory_name}.jsonl"


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + f"-{os.getpid()}"


def append(path: Path, records: Iterable[Record]) -> None:
    lines = "".join(r.as_json() + "\n" for r in records)
    if not lines:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab+") as fh:
        # Several ansible-playbook runs may share a ledger: whole lines, one writer at a time.
        fcntl.flock(fh, fcntl.LOCK_EX)
        data = lines.encode("utf-8")
        end = fh.seek(0, os.SEEK_END)
        if end:
            fh.seek(end - 1)
            if fh.read(1) != b"\n":
                # A torn last line (a writer died mid-line): end it, or this record would join it.
                data = b"\n" + data
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def read(path: Path, skipped: list[SkippedLine] | None = None) -> Iterator[Record]:
    """The ledger's records; a line that is not one is skipped, and added to `skipped` when given."""
    if not path.exists():
        return
    with open(path, "rb") as fh:
        for n, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                yield Record.from_json(raw.decode("utf-8"))
            except (ValueError, TypeError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
                if skipped is not None:
                    text = raw.decode("utf-8", errors="replace").rstrip("\n")
                    excerpt = text if len(text) <= EXCERPT_MAX else text[: EXCERPT_MAX - 1] + "…"
                    skipped.append(SkippedLine(path, n, excerpt, str(exc).split("\n")[0],
                                               torn=not raw.endswith(b"\n")))


def read_reporting(path: Path) -> tuple[list[Record], list[SkippedLine]]:
    """Every record, and the lines skipped (for the reader that reports them)."""
    skipped: list[SkippedLine] = []
    records = list(read(path, skipped))
    return records, skipped


def clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= REASON_MAX else text[: REASON_MAX - 1] + "…"


@dataclass
class EnterpriseProgress:
    """Where an enterprise stands after the runs recorded so far (check runs do not count)."""

    enterprise: str
    slug: str | None = None
    batch: int | None = None
    stage: str = "not started"
    failed_gate: str | None = None
    failed_host: str | None = None
    failed_task: str | None = None
    reason: str | None = None
    last_run: str | None = None
    changed: int = 0  # tasks changed in its last run, all hosts together
    gates: dict[str, str] = field(default_factory=dict)  # gate -> passed/failed (last run)

    @property
    def done(self) -> bool:
        return self.stage == STAGE_BY_GATE[Gate.VERIFY] and self.failed_gate is None

    @property
    def failed(self) -> bool:
        return self.failed_gate is not None


def progress(records: Iterable[Record], include_check: bool = False) -> dict[str, EnterpriseProgress]:
    """Per enterprise code: the latest run that touched it decides; within it the first failure."""
    by_ent: dict[str, list[Record]] = {}
    for rec in records:
        if rec.enterprise is None or (rec.check and not include_check):
            continue
        by_ent.setdefault(rec.enterprise, []).append(rec)
    out: dict[str, EnterpriseProgress] = {}
    for code, recs in by_ent.items():
        last_run = recs[-1].run
        run = [r for r in recs if r.run == last_run]
        p = EnterpriseProgress(code, slug=run[-1].slug, batch=run[-1].batch, last_run=last_run)
        # Stages reached in earlier runs stay reached (a re-run of a verified site only re-checks).
        for r in recs:
            if r.status == Status.PASSED and r.gate in STAGE_BY_GATE:
                if r.gate == Gate.DECOMMISSION:
                    p.stage = STAGE_BY_GATE[Gate.DECOMMISSION]
                elif p.stage == "decommissioned" or _rank(r.gate) >= _rank_stage(p.stage):
                    p.stage = STAGE_BY_GATE[Gate(r.gate)]
        for r in run:
            if r.status == Status.SUMMARY:
                p.changed += int(r.counts.get("changed", 0))
                continue
            if r.status in (Status.FAILED, Status.UNREACHABLE):
                p.gates[r.gate] = Status.FAILED
                if p.failed_gate is None:
                    p.failed_gate, p.failed_host, p.failed_task, p.reason = r.gate, r.host, r.task, r.reason
            elif r.status == Status.PASSED:
                p.gates.setdefault(r.gate, Status.PASSED)
        if p.failed_gate is not None and p.failed_gate in (g.value for g in GATE_ORDER):
            # A failure in this run puts it back before the gate that failed.
            idx = GATE_ORDER.index(Gate(p.failed_gate))
            p.stage = STAGE_BY_GATE[GATE_ORDER[idx - 1]] if idx > 0 else "surveyed"
        out[code] = p
    return out


def _rank(gate: str) -> int:
    return [g.value for g in GATE_ORDER].index(gate) if gate in GATE_ORDER else -1


def _rank_stage(stage: str) -> int:
    for gate, name in STAGE_BY_GATE.items():
        if name == stage and gate in GATE_ORDER:
            return GATE_ORDER.index(gate)
    return -1
