"""The lab's run state: what `up` made (processes, namespaces, files), so that `down` undoes it all."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from hazmon.lab.procs import ProcRecord

DEFAULT_STATE_DIR = Path(os.environ.get("HAZMON_LAB_STATE", "/run/hazmon-lab"))
STATE_FILE = "state.json"


@dataclass
class LabState:
    dir: Path
    inventory: str = ""
    processes: dict[str, ProcRecord] = field(default_factory=dict)
    namespaces: list[str] = field(default_factory=list)
    netns_mount_made: bool = False  # /run/netns became a mount point because of us
    faults: dict[str, str] = field(default_factory=dict)  # active faults, for `status`

    @property
    def file(self) -> Path:
        return self.dir / STATE_FILE

    @classmethod
    def load(cls, state_dir: Path = DEFAULT_STATE_DIR) -> LabState:
        path = state_dir / STATE_FILE
        if not path.exists():
            return cls(state_dir)
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            state_dir,
            data.get("inventory", ""),
            {k: ProcRecord.from_json(v) for k, v in data.get("processes", {}).items()},
            data.get("namespaces", []),
            data.get("netns_mount_made", False),
            data.get("faults", {}),
        )

    def save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        data = {
            "inventory": self.inventory,
            "processes": {k: v.to_json() for k, v in self.processes.items()},
            "namespaces": self.namespaces,
            "netns_mount_made": self.netns_mount_made,
            "faults": self.faults,
        }
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")
        tmp.replace(self.file)

    def exists(self) -> bool:
        return self.file.exists()
