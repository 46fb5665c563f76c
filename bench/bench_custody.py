"""Custody figures: every gateway of a 360-enterprise province publishes at its tags' own rates
while the province tracker is down for 10 minutes and the broker is killed in between.

Run: .venv/bin/python bench/bench_custody.py [--outage 600] [--gateways 314]

Real parts (hazmon.testing.custody): Mosquitto on the configuration the province_broker role
renders, the hazmon-tracker program, and per gateway the collector configuration rendered from
the model with the real durable queue and MQTT uplink. Printed: what was enqueued and accepted,
what was lost or counted twice (both must be 0), copies dropped, batches re-sent, how long the
tracker took to catch up, and the broker's peak memory and persistence file.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from hazmon.testing import custody


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--outage", type=float, default=600.0, help="seconds the tracker is down")
    p.add_argument("--gateways", type=int, default=314, help="simulated gateways (314: all of the province)")
    p.add_argument("--enterprises", type=int, default=360)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="hazmon-custody-") as tmp:
        inventory = custody.synth_inventory(Path(tmp) / "inventory", args.enterprises)
        timing = custody.Timing(warmup=30, outage=args.outage, after=30, broker_crash_at=0.6,
                                drain_timeout=max(600.0, args.outage))
        t0 = time.monotonic()
        r = custody.run(inventory, Path(tmp) / "run", gateways=args.gateways, timing=timing,
                        log=lambda m: print(f"  {m}", flush=True))
        wall = time.monotonic() - t0
    print(f"custody: {r.gateways} gateways publishing {r.samples_per_second:,.0f} samples/s; "
          f"tracker down {timing.outage:.0f} s; broker killed {r.broker_crashes}x and restarted from its snapshot")
    print(f"  samples enqueued at the gateways   {r.enqueued_samples:>12,}")
    print(f"  samples accepted by the tracker    {r.accepted_samples:>12,}")
    print(f"  lost                               {r.lost_samples:>12,}   (missing batches {r.missing_batches:,})")
    print(f"  counted twice                      {r.extra_samples:>12,}")
    print(f"  copies recognised and dropped      {r.duplicate_samples:>12,}   (samples)")
    print(f"  batches re-sent by the gateways    {r.resent_batches:>12,}")
    print(f"  left unconfirmed in queues         {r.left_batches:>12,}   (batches)")
    print(f"  tracker caught up in               {r.drain_seconds:>12.1f} s after production stopped")
    print(f"  broker peak memory (VmRSS)         {r.broker_peak_rss_bytes / 2**20:>12.1f} MiB")
    print(f"  broker peak persistence file       {r.broker_peak_db_bytes / 2**20:>12.1f} MiB")
    print(f"  wall time                          {wall:>12.0f} s")
    for problem in r.problems[:10]:
        print(f"  PROBLEM {problem}")
    return 0 if r.zero_loss else 1


if __name__ == "__main__":
    raise SystemExit(main())
