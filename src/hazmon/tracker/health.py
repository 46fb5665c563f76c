"""Is the tracker doing its job? Each internal loop's last success, judged for /healthz and /metrics.

Loops: `mqtt` (paho's network thread, connected and subscribed), `flush` (a commit of the state,
then the acknowledgements) and `evaluation` (the flags). A loop is unhealthy when the thread that
runs it is dead, or when it has not succeeded for its stale bound (settings.stale_after of its
period): a flush failing over and over ("database is locked", disk full) or a broker out of
reach shows here, while the process itself still answers. Only the loops started are judged (a
test that evaluates by hand runs no evaluation loop).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

NEVER = float("-inf")


@dataclass
class Loop:
    stale_after: float
    alive: Callable[[], bool]  # the thread that runs the loop
    # For a loop whose success is a state rather than an event (MQTT: subscribed), checked at
    # every judgement: while it holds, the loop succeeds now.
    holds: Callable[[], bool] | None = None
    registered_at: float = NEVER


@dataclass(frozen=True, slots=True)
class LoopStatus:
    name: str
    healthy: bool
    last_success: float  # NEVER: not since the start
    stale_after: float
    detail: str


@dataclass
class Health:
    clock: Callable[[], float]
    mqtt_connected: bool = False  # subscribed: messages can flow (set by the MQTT side)
    last_success: dict[str, float] = field(default_factory=dict)
    last_error: dict[str, str] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)  # unexpected exceptions caught in a loop
    loops: dict[str, Loop] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def last_flush_ts(self) -> float:
        return self.last_success.get("flush", NEVER)

    def register(self, name: str, stale_after: float, alive: Callable[[], bool],
                 holds: Callable[[], bool] | None = None) -> None:
        self.loops[name] = Loop(stale_after, alive, holds, self.clock())

    def success(self, name: str, at: float | None = None) -> None:
        self.last_success[name] = self.clock() if at is None else at
        self.last_error.pop(name, None)

    def failure(self, name: str, error: str, unexpected: bool = False) -> None:
        self.last_error[name] = error
        if unexpected:
            with self._lock:
                self.errors[name] = self.errors.get(name, 0) + 1

    def connected(self) -> bool:
        """Subscribed, and the network thread that delivers the messages still runs."""
        loop = self.loops.get("mqtt")
        return self.mqtt_connected and (loop is None or loop.alive())

    def status(self) -> list[LoopStatus]:
        now = self.clock()
        out = []
        for name, loop in self.loops.items():
            alive = loop.alive()
            if alive and loop.holds is not None and loop.holds():
                self.last_success[name] = now
            last = self.last_success.get(name, NEVER)
            age = now - max(last, loop.registered_at)  # a loop just started has its bound to succeed
            error = self.last_error.get(name)
            if not alive:
                healthy, detail = False, "its thread is dead"
            elif age > loop.stale_after:
                since = "since the start" if last == NEVER else f"for {now - last:.0f} s"
                healthy, detail = False, f"no success {since} (stale after {loop.stale_after:g} s)"
            else:
                healthy, detail = True, "ok" if last != NEVER else "starting"
            if error and not healthy:
                detail += f"; last error: {error}"
            out.append(LoopStatus(name, healthy, last, loop.stale_after, detail))
        return out
