#!/usr/bin/env python3
"""Group cluster of scripts/bench.sh (issue 19): the control plane against 1, 2 and 3 gateways
on one shared state in Redis, next to the trivial responder and one gateway on memory and on
sqlite from the same run. Writes one page (bench/results/cluster.md) and prints its table."""
import argparse
import datetime
import glob
import json
import os
import re
import subprocess

RUNS = (("echo", "trivial responder (`rtm-bench echo`), baseline"),
        ("memory", "1 gateway, `memory`"),
        ("sqlite", "1 gateway, `sqlite`"),
        ("redis-1", "1 gateway, `redis`"),
        ("redis-2", "2 gateways, `redis`, cluster"),
        ("redis-3", "3 gateways, `redis`, cluster"))


def metric_sum(path, family):
    total = 0.0
    try:
        with open(path) as f:
            for line in f:
                m = re.match(r"^" + family + r"(\{[^}]*\})? ([0-9.eE+-]+)$", line.strip())
                if m:
                    total += float(m.group(2))
    except OSError:
        return None
    return total


def delta(raw, label, family):
    """The growth of `family` over the run, summed over the run's gateways."""
    total, seen = 0.0, False
    for before in sorted(glob.glob(os.path.join(raw, f"cluster-{label}-*.before.prom"))):
        after = before.replace(".before.prom", ".after.prom")
        b, a = metric_sum(before, family), metric_sum(after, family)
        if a is not None and b is not None:
            total += a - b
            seen = True
    return total if seen else None


def fmt(v, digits=1):
    if v is None:
        return "-"
    return f"{v:,.{digits}f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    runs = {}
    for label, _ in RUNS:
        path = os.path.join(args.raw, f"cluster-{label}.json")
        if os.path.exists(path):
            with open(path) as f:
                runs[label] = json.load(f)
    if not runs:
        print("cluster report: no runs")
        return
    echo, memory = runs.get("echo"), runs.get("memory")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    load = open("/proc/loadavg").read().split()[:3]
    md = ["# Benchmark results: several gateways on one shared state\n",
          f"Written by `scripts/bench.sh` (group cluster) on "
          f"{datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}, commit `{commit}`; "
          f"{os.cpu_count()} cores, shared by the clients, the broker, Redis and every gateway; load "
          f"average at the end {' '.join(load)}. 50 control-plane clients in 2 processes, each "
          "repeating login → join → join_topic → subscribe → leave, one request at a time, QoS 1 "
          "(bench/README.md, 3 and 3f). One Mosquitto, one redis-server (`appendonly yes`, "
          "`appendfsync everysec`), state emptied before each run.\n",
          "| responder | ops/s | × responder | p50 / p99 ms | gateway CPU per op (all gateways) "
          "| × memory's | Redis CPU per op | Redis round trips per request | lease waits per request |",
          "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for label, name in RUNS:
        d = runs.get(label)
        if not d:
            continue
        ratio = d["ops_per_s"] / echo["ops_per_s"] if echo and echo.get("ops_per_s") else None
        cpu = d.get("cpu.responder_us_per_op")
        cpu_ratio = (cpu / memory["cpu.responder_us_per_op"]
                     if memory and label != "echo" and memory.get("cpu.responder_us_per_op") else None)
        requests = delta(args.raw, label, "rtm_requests_total")
        trips = delta(args.raw, label, "rtm_redis_round_trips_total")
        waits = delta(args.raw, label, "rtm_cluster_lease_waits_total")
        per = (lambda v: v / requests if v is not None and requests else None)
        md.append(f"| {name} | {fmt(d['ops_per_s'], 0)} | {fmt(ratio, 2)} | "
                  f"{fmt(d.get('latency.p50_ms'), 2)} / {fmt(d.get('latency.p99_ms'), 2)} | "
                  f"{fmt(cpu)} µs | {fmt(cpu_ratio, 2) if cpu_ratio else '-'} | "
                  f"{fmt(d.get('cpu.redis_us_per_op')) + ' µs' if d.get('cpu.redis_us_per_op') else '-'} | "
                  f"{fmt(per(trips), 2) if label.startswith('redis') else '-'} | "
                  f"{fmt(per(waits), 2) if label.startswith('redis') else '-'} |")
    md.append("\nops/s and latency: answered requests over the measured 10 s (errors and unanswered "
              "in the raw JSON). Gateway CPU per op: user + system time of all the run's gateways over "
              "the measured part, per answered request; × memory's: against one gateway on `memory` "
              "in this run. Redis round trips per request: `rtm_redis_round_trips_total` over "
              "`rtm_requests_total`, summed over the gateways for the whole run (a turn costs two: "
              "begin and commit, whatever it holds). Lease waits: polls of the turn lease while "
              "another gateway held it.\n")
    text = "\n".join(md) + "\n"
    with open(args.out, "w") as f:
        f.write(text)
    print(text)
    print(f"report: {args.out}")


if __name__ == "__main__":
    main()
