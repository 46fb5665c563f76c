"""After each wave of the rollout: does the run go on? (the action plugin hazmon_wave_verdict)

Ansible's own rule (`max_fail_percentage`) counts hosts, but a wave holds whole enterprises of
several device kinds: an access gateway, a data-acquisition gateway, an AI box, NVRs, a switch.
A failure on every data-acquisition gateway of a wave (a broken collector build, a wrong broker
account) is a fifth of its hosts and stayed under the 50 % default, and the next wave got the same
failure. The unit the rollout is whole-or-nothing about is the enterprise, so that is what is counted:

1. the first wave is the canary: any failure in it stops the run;
2. a later wave stops the run when more than `max_fail_percentage` of its enterprises failed (an
   enterprise fails when any of its devices did); as with Ansible's rule, exceeded, not equalled;
3. and when every device of one kind in the wave failed (the kind's role is broken, whatever the
   share of enterprises: e.g. every data-acquisition gateway).

Failed hosts are those of the wave no longer active when it ends (failed or unreachable, at any
of its gates: roles or the wave's verify gates).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class WaveHost:
    name: str
    enterprise: str
    kind: str  # hazmon_role: access_gateway, daq_gateway, ai_box, nvr, switch


@dataclass
class Verdict:
    stop: bool
    msg: str
    failed_hosts: list[str] = field(default_factory=list)
    failed_enterprises: list[str] = field(default_factory=list)
    failed_kinds: list[str] = field(default_factory=list)  # kinds every device of which failed

    def as_dict(self) -> dict[str, object]:
        return {"stop": self.stop, "msg": self.msg, "failed_hosts": self.failed_hosts,
                "failed_enterprises": self.failed_enterprises, "failed_kinds": self.failed_kinds}


def verdict(hosts: Sequence[WaveHost], active: Sequence[str], *, canary: bool, later_waves: bool,
            max_fail_percentage: float) -> Verdict:
    """`hosts`: the wave's devices when it started; `active`: those still in it when it ended."""
    if not 0 <= max_fail_percentage <= 100:
        raise ValueError(f"max_fail_percentage {max_fail_percentage}: give 0 to 100")
    up = set(active)
    failed = [h for h in hosts if h.name not in up]
    enterprises = sorted({h.enterprise for h in hosts})
    bad_ents = sorted({h.enterprise for h in failed})
    kinds = _by_kind(hosts)
    bad_kinds = sorted(k for k, names in kinds.items() if names and all(n not in up for n in names))
    out = Verdict(False, "", [h.name for h in failed], bad_ents, bad_kinds)
    share = 100.0 * len(bad_ents) / len(enterprises) if enterprises else 0.0
    what = (f"{len(bad_ents)} of the wave's {len(enterprises)} enterprise(s) failed"
            + (f" ({', '.join(bad_ents)}: {', '.join(h.name for h in failed)})" if failed else ""))
    reasons = []
    if canary and failed:
        reasons.append("the first wave is the canary: any failure in it stops the run")
    if share > max_fail_percentage:
        reasons.append(f"{share:.0f} % of its enterprises failed, more than max_fail_percentage "
                       f"{max_fail_percentage:g} %")
    if bad_kinds:
        reasons.append("every device of a kind failed: "
                       + ", ".join(f"{k} ({len(kinds[k])})" for k in bad_kinds))
    if not reasons:
        out.msg = f"{what}: the run goes on" if later_waves else f"{what}; it was the last wave"
        return out
    if not later_waves:
        out.msg = f"{what}; {'; '.join(reasons)}; it was the last wave"
        return out
    out.stop = True
    out.msg = f"{what}; {'; '.join(reasons)}. The later waves are not started."
    return out


def _by_kind(hosts: Sequence[WaveHost]) -> Mapping[str, list[str]]:
    out: dict[str, list[str]] = {}
    for h in hosts:
        out.setdefault(h.kind, []).append(h.name)
    return out
