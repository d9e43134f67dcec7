#!/usr/bin/env python3
"""bench/results/zerohop.md from group zerohop of scripts/bench.sh: the bridge carried out by
the gateway (mapping.mode relay) and inside the broker (mapping.mode broker), each against
the direct path measured on the same broker in the same run."""
import json
import os
import sys


def load(raw, name):
    try:
        with open(os.path.join(raw, name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def fmt(v, digits=2):
    if v is None:
        return "–"
    if isinstance(v, float) and v >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def ratio(a, b):
    return a / b if a is not None and b else None


def median(values):
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def main(raw, out):
    md = ["# Zero-hop bridge: relay and broker modes (scripts/bench.sh, group zerohop)\n",
          "Two stacks, one after the other, each a fresh Mosquitto and gateway with the coplay "
          "rules: **relay** (`mapping.mode relay`: the gateway subscribes to the device topics and "
          "publishes each message again, two crossings of the broker) and **broker** "
          "(`mapping.mode broker`: the project's Mosquitto plugin routes each message with the same "
          "mapping library inside the broker, `plugin_opt_bridge true`). In each stack the direct "
          "path (clients publish to the RTM topic themselves) is the baseline, measured on the same "
          "broker in the same run.\n"]
    targets = []

    md.append("## Coplay latency, 100 pairs at 60 Hz\n")
    md.append("| mode | path | p50 ms | p99 ms | p99.9 ms | lost | reordered | broker CPU | gateway CPU | bridge − direct p50 / p99 ms |")
    md.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for mode in ("relay", "broker"):
        d = load(raw, f"zh-{mode}-latency-direct.json")
        b = load(raw, f"zh-{mode}-latency-bridge.json")
        for path, r in (("direct (baseline)", d), ("bridge", b)):
            if not r:
                continue
            wall = r.get("cpu.wall_s") or 1
            delta = ""
            if path == "bridge" and d:
                d50 = r["latency.p50_ms"] - d["latency.p50_ms"]
                d99 = r["latency.p99_ms"] - d["latency.p99_ms"]
                delta = f"+{d50:.3f} / +{d99:.3f}"
                if mode == "broker":
                    targets.append(("bridge adds ≤ 0.05 ms p50 over direct, 100 pairs", f"+{d50:.3f} ms", d50 <= 0.05))
                    targets.append(("bridge adds ≤ 0.3 ms p99 over direct, 100 pairs", f"+{d99:.3f} ms", d99 <= 0.3))
            md.append(f"| {mode} | {path} | {fmt(r['latency.p50_ms'], 3)} | {fmt(r['latency.p99_ms'], 3)} | "
                      f"{fmt(r.get('latency.p999_ms'), 3)} | {int(r['lost'])}/{int(r['expected'])} | "
                      f"{int(r['reordered'])} | {fmt(100 * r['cpu.broker_s'] / wall, 0)}% | "
                      f"{fmt(100 * r['cpu.gateway_s'] / wall, 0)}% | {delta} |")

    md.append("\n## Bridge throughput (highest rate with no loss)\n")
    md.append("| QoS | payload | mode | runs | direct msg/s | bridge msg/s | bridge / direct (median; each run) | broker CPU-s per 100k: direct, bridge | broker CPU bridge / direct (median; each run) | gateway CPU-s per 100k (bridge) | bridge p99 ms at that rate |")
    md.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for qos in (0, 1):
        for size in (64, 1024):
            for mode in ("relay", "broker"):
                runs = []
                for rep in range(1, 100):
                    d = load(raw, f"zh-{mode}-throughput-direct-q{qos}-{size}-r{rep}.json")
                    b = load(raw, f"zh-{mode}-throughput-bridge-q{qos}-{size}-r{rep}.json")
                    if not d or not b:
                        break
                    runs.append((d, b))
                if not runs:
                    continue
                rates = [ratio(b.get("rate"), d.get("rate")) for d, b in runs]
                cpus = [ratio(b.get("cpu.broker_s_per_100k"), d.get("cpu.broker_s_per_100k")) for d, b in runs]
                rr, cr = median(rates), median(cpus)
                d, b = runs[len(runs) // 2] if len(runs) % 2 else runs[0]
                each = lambda xs: ", ".join(fmt(x) for x in xs)
                md.append(f"| {qos} | {size} B | {mode} | {len(runs)} | {fmt(float(d['rate']))} | {fmt(float(b['rate']))} | "
                          f"{fmt(rr)} ({each(rates)}) | {fmt(d.get('cpu.broker_s_per_100k'))}, {fmt(b.get('cpu.broker_s_per_100k'))} | "
                          f"{fmt(cr)}× ({each(cpus)}) | {fmt(b.get('cpu.gateway_s_per_100k'))} | "
                          f"{fmt(b.get('latency.p99_ms'), 3)} |")
                if mode == "broker":
                    targets.append((f"bridge ≥ 0.9 × direct, QoS {qos}, {size} B", f"{fmt(rr)}× (median of {len(runs)})",
                                    rr is not None and rr >= 0.9))
                    targets.append((f"broker CPU per bridged message ≤ 1.2 × direct, QoS {qos}, {size} B",
                                    f"{fmt(cr)}× (median of {len(runs)})", cr is not None and cr <= 1.2))
    md.append("\nThe rate is the highest step the sender held with every message received "
              "(bench/README.md, §2; steps 10% apart); broker CPU per 100k messages is the broker's "
              "CPU time over that step divided by the messages received. The broker mode runs each "
              "pair (direct, then bridge) several times and takes the median of the ratios: on a "
              "2-core machine shared by the broker and the clients one run can be 30% off. The "
              "rates shown are those of the median run (of the first, for an even count).\n")

    md.append("## Targets (issue 20, broker mode)\n")
    md.append("| target | measured | |")
    md.append("| --- | --- | --- |")
    for name, value, ok in targets:
        md.append(f"| {name} | {value} | {'met' if ok else 'missed'} |")
    with open(out, "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
