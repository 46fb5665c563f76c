"""A stand-in for the province tracker's custody side, for the collector's tests and bench.

It records the seqs a receiver got, per gateway and queue epoch (hazmon.tracker.seqs.SeqSet, as
the tracker does), and publishes them as wire.Committed messages, retained, QoS 1, on each
gateway's ack topic, at most once per `interval` per gateway and only when they changed.
Tests steer it: `paused` publishes nothing (a tracker that is down), `lose` makes it forget the
first copy of chosen seqs (the broker lost them after its PUBACK).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt

from hazmon import wire
from hazmon.tracker.seqs import SeqSet


@dataclass
class _Epoch:
    city: str
    seqs: SeqSet = field(default_factory=SeqSet)
    dirty: bool = False


class Committer:
    def __init__(self, client: mqtt.Client, interval: float = 0.2) -> None:
        self.client = client
        self.interval = interval
        self.paused = threading.Event()
        self.lose: set[int] = set()  # seqs whose first copy is taken as lost (not committed)
        self.lost: set[int] = set()  # ... and that were (their later copies are committed)
        self.published = 0
        self._lock = threading.Lock()
        self._epochs: dict[tuple[str, int], _Epoch] = {}
        self._latest: dict[str, int] = {}  # gateway -> its current epoch
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="committer", daemon=True)
        self._thread.start()

    def record(self, city: str, batch: wire.Batch) -> None:
        with self._lock:
            if batch.seq in self.lose and batch.seq not in self.lost:
                self.lost.add(batch.seq)
                return
            e = self._epochs.setdefault((batch.gateway, batch.epoch), _Epoch(city))
            self._latest[batch.gateway] = batch.epoch
            if e.seqs.add(batch.seq):
                e.dirty = True

    def committed(self, gateway: str, epoch: int) -> list[tuple[int, int]]:
        with self._lock:
            e = self._epochs.get((gateway, epoch))
            return [] if e is None else list(zip(e.seqs.los, e.seqs.his, strict=True))

    def flush(self) -> None:
        """Publish every changed gateway's current epoch now (unless paused)."""
        if self.paused.is_set():
            return
        with self._lock:
            out = []
            for gw, ep in self._latest.items():
                e = self._epochs[(gw, ep)]
                if e.dirty:
                    e.dirty = False
                    ranges = tuple(zip(e.seqs.los, e.seqs.his, strict=True))
                    out.append((wire.ack_topic(e.city, gw), wire.Committed(gw, ep, ranges, time.time())))
        for topic, msg in out:
            self.client.publish(topic, msg.encode(), qos=1, retain=True)
            self.published += 1

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
