#!/usr/bin/env python3
"""Turns the raw outputs of scripts/bench.sh into bench/results/: results.md (targets of issue 7
with pass/miss, every benchmark next to its baseline), results.csv (every number, flat),
latency_percentiles.csv and latency.png (gnuplot). With --readme, also replaces the part of
README.md between the bench markers with the targets table and the plot."""
import argparse
import csv
import datetime
import glob
import json
import os
import platform
import subprocess
import sys

README_BEGIN = "<!-- bench:begin (scripts/bench.sh writes this part) -->"
README_END = "<!-- bench:end -->"


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def fmt(v, digits=2):
    if v is None:
        return "–"
    if isinstance(v, str):
        return v
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def verdict(ok):
    if ok is None:
        return "n/a"
    return "**pass**" if ok else "**miss**"


def sh(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def meta(raw):
    m = {}
    try:
        with open(os.path.join(raw, "meta.txt")) as f:
            for line in f:
                k, _, v = line.strip().partition("=")
                m[k] = v
    except OSError:
        pass
    return m


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def pkg_version(name):
    return sh(["dpkg-query", "-W", "-f=${Version}", name]) or "?"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--readme")
    args = ap.parse_args()
    raw, out = args.raw, args.out
    os.makedirs(out, exist_ok=True)
    m = meta(raw)
    quick = m.get("quick") == "1"

    rows = []  # results.csv: benchmark, config, metric, value
    md = []
    targets = []  # (target, measured, baseline, verdict)

    # ------------------------------------------------------------ latency
    lat = {}
    for p in glob.glob(os.path.join(raw, "latency-*.json")):
        d = load(p)
        if d:
            lat[(d["path"], int(d["pairs"]))] = d
            for k, v in d.items():
                if isinstance(v, (int, float)):
                    rows.append(("latency", f"{d['path']} {int(d['pairs'])} pairs", k, v))

    def L(path, pairs, key):
        d = lat.get((path, pairs))
        return None if d is None else d.get(key)

    a50, a99 = L("direct", 100, "latency.p50_ms"), L("direct", 100, "latency.p99_ms")
    c50, c99 = L("bridge", 100, "latency.p50_ms"), L("bridge", 100, "latency.p99_ms")
    b50, b99 = L("sdk", 100, "latency.p50_ms"), L("sdk", 100, "latency.p99_ms")
    if a50 is not None and b50 is not None:
        ok = abs(b50 - a50) <= max(0.05, 0.1 * a50) and abs(b99 - a99) <= max(0.5, 0.25 * a99)
        targets.append(("(b) SDK path equal to (a) direct within noise, 100 pairs "
                        "(p50 within max(0.05 ms, 10%), p99 within max(0.5 ms, 25%))",
                        f"p50 {fmt(b50, 3)} / p99 {fmt(b99, 3)} ms", f"(a) p50 {fmt(a50, 3)} / p99 {fmt(a99, 3)} ms",
                        verdict(ok)))
    elif lat:
        targets.append(("(b) SDK path equal to (a) direct within noise, 100 pairs", "not run (no SDK in this build)", "", "n/a"))
    if a50 is not None and c50 is not None:
        targets.append(("(c) bridge adds ≤ 0.3 ms p50 over (a), 100 pairs", f"+{fmt(c50 - a50, 3)} ms (p50 {fmt(c50, 3)})",
                        f"(a) p50 {fmt(a50, 3)} ms", verdict(c50 - a50 <= 0.3)))
        targets.append(("(c) bridge adds ≤ 1 ms p99 over (a), 100 pairs", f"+{fmt(c99 - a99, 3)} ms (p99 {fmt(c99, 3)})",
                        f"(a) p99 {fmt(a99, 3)} ms", verdict(c99 - a99 <= 1.0)))
    lost_total = sum(int(d.get("lost", 0)) + int(d.get("reordered", 0)) for d in lat.values())
    if lat:
        targets.append(("coplay frames: none lost or reordered (every path and size)",
                        f"{lost_total} lost + reordered", "", verdict(lost_total == 0)))

    # ------------------------------------------------------------ throughput
    tp = {}
    for p in glob.glob(os.path.join(raw, "throughput-*.json")):
        d = load(p)
        if d:
            tp[(d["path"], int(d["qos"]), int(d["size"]))] = d
            for k, v in d.items():
                if isinstance(v, (int, float)):
                    rows.append(("throughput", f"{d['path']} QoS {int(d['qos'])} {int(d['size'])} B", k, v))
    for qos in (0, 1):
        for size in (64, 1024):
            direct, bridge = tp.get(("direct", qos, size)), tp.get(("bridge", qos, size))
            if not direct or not bridge:
                continue
            dr, br = direct.get("rate", 0), bridge.get("rate", 0)
            ratio = br / dr if dr else None
            rows.append(("throughput", f"QoS {qos} {size} B", "bridge_over_direct", ratio if ratio is not None else ""))
            targets.append((f"bridge ≥ 0.45 × direct, QoS {qos}, {size} B",
                            f"{fmt(ratio)} × ({fmt(br)} msg/s)", f"direct {fmt(dr)} msg/s",
                            verdict(ratio is not None and ratio >= 0.45)))

    # ------------------------------------------------------------ control
    ctl = {}
    for label in ("echo", "gateway"):
        d = load(os.path.join(raw, f"control-{label}.json"))
        if d:
            ctl[label] = d
            for k, v in d.items():
                if isinstance(v, (int, float)):
                    rows.append(("control", label, k, v))
    g, e = ctl.get("gateway"), ctl.get("echo")
    if g:
        base = f"echo {fmt(e['ops_per_s'], 0)} ops/s, p99 {fmt(e['latency.p99_ms'])} ms" if e else ""
        targets.append(("control plane ≥ 20,000 ops/s (50 clients)", f"{fmt(g['ops_per_s'], 0)} ops/s", base,
                        verdict(g["ops_per_s"] >= 20000)))
        targets.append(("control plane p99 ≤ 5 ms", f"{fmt(g['latency.p99_ms'])} ms (p50 {fmt(g['latency.p50_ms'])})",
                        base, verdict(g["latency.p99_ms"] <= 5)))

    # ------------------------------------------------------------ state + sessions
    state = load(os.path.join(raw, "state.json"))
    bms = {}
    if state:
        for b in state.get("benchmarks", []):
            bms[b["name"].split("/iterations")[0]] = b
            for k, v in b.items():
                if isinstance(v, (int, float)):
                    rows.append(("state", b["name"], k, v))
    pop = bms.get("BM_Populate")
    hashfind = bms.get("BM_HashFind")
    if pop:
        targets.append(("≤ 1 KB per idle session: State (100k sessions, heap)",
                        f"{fmt(pop['B_per_session_heap'], 0)} B (+{fmt(pop['B_per_join_heap'], 0)} B per channel joined)",
                        "", verdict(pop["B_per_session_heap"] <= 1024)))
    ses = load(os.path.join(raw, "sessions.json"))
    if ses:
        for k, v in ses.items():
            if isinstance(v, (int, float)):
                rows.append(("sessions", "gateway process", k, v))
        targets.append((f"≤ 1 KB per idle session: gateway process RSS, {int(ses['count']):,} logins",
                        f"{fmt(ses['bytes_per_session'], 0)} B",
                        f"gateway RSS before: {fmt(ses['rss_before_kb'] / 1024, 1)} MB",
                        verdict(ses["bytes_per_session"] <= 1024)))
    if pop:
        targets.append(("≤ 100 B per subscription: State (1M subscriptions, heap)",
                        f"{fmt(pop['B_per_subscription_heap'], 1)} B (RSS {fmt(pop['B_per_subscription_rss'], 1)} B)",
                        "", verdict(pop["B_per_subscription_heap"] <= 100)))

    # ------------------------------------------------------------ plot
    curves = []
    for p in sorted(glob.glob(os.path.join(raw, "latency-*.csv"))):
        with open(p) as f:
            curves.extend(csv.DictReader(f))
    if curves:
        with open(os.path.join(out, "latency_percentiles.csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["path", "pairs", "percentile", "nines", "latency_ms"])
            for r in curves:
                w.writerow([r["path"], r["pairs"], r["percentile"], r["nines"], r["latency_ms"]])
        plot(raw, out, lat, quick)

    # ------------------------------------------------------------ enforcement (issue 13)
    enf_targets, enf_md, enf_rows = enforcement_report(raw, m)
    targets += enf_targets
    commit = sh(["git", "rev-parse", "--short", "HEAD"])
    dirty = " (with uncommitted changes)" if sh(["git", "status", "--porcelain", "--untracked-files=no"]) else ""
    now = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    web_targets, web_md, web_rows = web_report(raw, m, f"{now}, commit `{commit}`{dirty}")
    if web_md:
        plot_web(raw, out, quick)
    targets += web_targets
    # A run of the enforcement group or the web group alone (or both) leaves the other groups'
    # results as they are: enforcement's go to enforcement.md and enforcement.csv, web's
    # replace only its own section of results.md and its own rows of results.csv.
    others = any(not os.path.basename(p).startswith(("enf-", "web-", "cluster-")) for p in glob.glob(os.path.join(raw, "*.json")))
    rows += enf_rows + web_rows
    if others:
        write_csv(os.path.join(out, "results.csv"), rows)
    else:
        if enf_rows:
            write_csv(os.path.join(out, "enforcement.csv"), enf_rows)
        if web_rows:
            merge_web(out, web_md, web_rows)

    # ------------------------------------------------------------ markdown
    md.append("# Benchmark results\n")
    md.append(f"Written by `scripts/bench.sh` on {now}, commit `{commit}`{dirty}. "
              f"{os.cpu_count()} × {cpu_model()}, Linux {platform.release()}; Mosquitto {pkg_version('mosquitto')} "
              f"(`set_tcp_nodelay true`, the rest default: `max_inflight_messages` 20, `max_queued_messages` 1000), Paho C {pkg_version('libpaho-mqtt1.3')}, "
              f"Paho C++ {pkg_version('libpaho-mqttpp3-1')}; gateway and benchmarks built {m.get('build_type') or '?'}; "
              f"gateway broker link: {m.get('gateway_client', 'default')}. "
              f"Load average at the start: {m.get('loadavg', '?')}.")
    if quick:
        md.append("\n**Quick run (BENCH_QUICK=1): short phases, a smoke test of the programs; "
                  "do not read performance into these numbers.**")
    md.append("\nMethods, profiles and what the misses come from: [bench/README.md](../README.md).\n")
    md.append("## Targets (issue 7)\n")
    md.append("| target | measured | baseline (same run) | result |")
    md.append("| --- | --- | --- | --- |")
    for t in targets:
        md.append("| " + " | ".join(t) + " |")

    md.append("\n## 1. Coplay latency (60 Hz, one-way, same machine, steady clock)\n")
    if lat:
        sec = next(iter(lat.values())).get("seconds")
        md.append(f"Each run: {fmt(sec, 0)} s measured after a warm-up; frames of 32 bytes, QoS 0. "
                  "(a) direct: the player publishes `rtm/ch/{room}/input/{player}`, the host subscribes to it. "
                  "(b) SDK: both ends are `rtm::sdk::Client`s (login, join, join_topic / subscribe_topic, "
                  "`publish_topic` → `on_message`). (c) bridge: the player publishes "
                  "`coplay/{room}/{player}/input` (rule `controller-input` of examples/coplay), the host reads "
                  "`rtm/ch/{room}/input/{player}`. One MQTT connection per player and per host; the pairs are "
                  "split over client processes of 10 pairs each; sends follow an absolute schedule with the pairs "
                  "spread evenly over the 16.7 ms period.\n")
        md.append("| path | pairs | p50 ms | p99 ms | p99.9 ms | max ms | lost | reordered | broker CPU | gateway CPU | sender lateness p99 ms |")
        md.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        names = {"direct": "(a) direct (baseline)", "sdk": "(b) SDK", "bridge": "(c) bridge"}
        for pairs in (1, 100):
            for path in ("direct", "sdk", "bridge"):
                d = lat.get((path, pairs))
                if not d:
                    continue
                wall = d.get("cpu.wall_s") or 1
                md.append(f"| {names[path]} | {pairs} | {fmt(d['latency.p50_ms'], 3)} | {fmt(d['latency.p99_ms'], 3)} | "
                          f"{fmt(d['latency.p999_ms'], 3)} | {fmt(d['latency.max_ms'], 3)} | {int(d['lost'])}/{int(d['expected'])} | "
                          f"{int(d['reordered'])} | {fmt(100 * d['cpu.broker_s'] / wall, 0)}% | "
                          f"{fmt(100 * d['cpu.gateway_s'] / wall, 0)}% | {fmt(d['sender_lateness.p99_ms'], 3)} |")
        md.append("\nCPU: share of one core over the measured part. Sender lateness: how late the client "
                  "processes sent against the schedule (a busy machine shows here).\n")
        md.append("![latency by percentile](latency.png)\n")

    md.append("## 2. Bridge throughput (highest rate with no loss)\n")
    if tp:
        any_tp = next(iter(tp.values()))
        client = any_tp.get("client", "paho")  # runs before the lean clients wrote no "client"
        if client == "lean":
            kind = ("lean MQTT connections of the bench's own (TCP_NODELAY, the gateway's codec; each publisher "
                    f"writes what is due every {fmt(any_tp.get('tick_ms', 1), 0)} ms with one send(), each subscriber "
                    "decodes many packets per recv(); `--client lean`)")
        else:
            kind = "Paho connections (`--client paho`)"
        md.append(f"{int(any_tp['pub_procs'])} publisher processes × {int(any_tp['publishers']) // max(1, int(any_tp['pub_procs']))} "
                  f"{kind}, {int(any_tp['subscribers'])} subscriber connections; steps of "
                  f"{fmt(any_tp['step_s'], 1)} s. Direct: the publishers write `rtm/ch/tput/input/{{pub}}`, which the "
                  "subscribers read; bridge: they write `coplay/tput/{pub}/input` (QoS 0 rule `controller-input`) or "
                  "`coplay-q1/tput/{pub}/input` (its QoS 1 twin) and the gateway republishes to the same "
                  "`rtm/ch/tput/input/{pub}`. Method: a closed-loop probe, then open-loop rate steps ×1.2 from the rate of "
                  "the probe, then one step between the last clean and the first failed rate. A step is clean with "
                  "no loss, the rate reached, the median latency not growing over the step and no backlog at the end.\n")
        md.append("| QoS | payload | direct msg/s | bridge msg/s | bridge / direct | broker busy at direct max | broker CPU-s / 100k (direct, bridge) | gateway CPU-s / 100k | bridge p99 at that rate | steps (bridge) |")
        md.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        client_bound = []
        for qos in (0, 1):
            for size in (64, 1024):
                dd, bd = tp.get(("direct", qos, size)), tp.get(("bridge", qos, size))
                if not dd and not bd:
                    continue
                dr = dd.get("rate") if dd else None
                br = bd.get("rate") if bd else None
                ratio = br / dr if dr and br is not None else None
                busy = None
                if dd and dr and dd.get("cpu.broker_s_per_100k") is not None:
                    busy = dd["cpu.broker_s_per_100k"] * dr / 1e5
                    if busy < 0.8:
                        client_bound.append(f"QoS {qos} {size} B")
                md.append(f"| {qos} | {size} B | {fmt(dr)} | {fmt(br)} | {fmt(ratio)} | "
                          f"{fmt(100 * busy, 0) + '% of a core' if busy is not None else '–'} | "
                          f"{fmt(dd.get('cpu.broker_s_per_100k') if dd else None)}, {fmt(bd.get('cpu.broker_s_per_100k') if bd else None)} | "
                          f"{fmt(bd.get('cpu.gateway_s_per_100k') if bd else None)} | "
                          f"{fmt(bd.get('latency.p99_ms') if bd else None)} ms | {bd.get('steps', '').strip().rstrip(';') if bd else ''} |")
        if client_bound:
            md.append(f"\nAt the direct maximum the broker was below 80% of a core for {', '.join(client_bound)}: "
                      "there the clients (or other load on the machine), not the broker, set the direct rate, "
                      "and the ratio overstates the bridge (the 0.5 limit holds when the broker is the bottleneck).")
        drops = 0
        try:
            with open(os.path.join(raw, "mosquitto-throughput.log")) as f:
                drops = sum(1 for line in f if "dropped" in line)
        except OSError:
            pass
        if drops:
            md.append(f"\nMosquitto logged \"Outgoing messages are being dropped\" {drops} time(s) during this part: "
                      "a subscriber (or the gateway) fell more than `max_queued_messages` behind, which is how a "
                      "failed step loses messages.")
        md.append("")

    md.append("## 3. Control plane\n")
    if ctl:
        any_c = next(iter(ctl.values()))
        md.append(f"{int(any_c['clients'])} clients in {int(any_c['procs'])} processes, each its own connection and uid, "
                  "each running login → join → join_topic → subscribe → leave cycles, one request at a time "
                  f"(QoS 1 both ways), {fmt(any_c['seconds'], 0)} s measured. Baseline: the same clients against "
                  "`rtm-bench echo`, a responder that answers every request on its mirrored topic and does nothing "
                  "else. The bench clients set TCP_NODELAY on their sockets"
                  + (" (see bench/README.md: without it every request waits ~40 ms in the client)." if any_c.get("nodelay") else ".")
                  + "\n")
        md.append("| responder | ops/s | p50 ms | p99 ms | p99.9 ms | max ms | errors | broker CPU | responder CPU |")
        md.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for label, name in (("echo", "echo (baseline)"), ("gateway", "gateway")):
            d = ctl.get(label)
            if not d:
                continue
            md.append(f"| {name} | {fmt(d['ops_per_s'], 0)} | {fmt(d['latency.p50_ms'])} | {fmt(d['latency.p99_ms'])} | "
                      f"{fmt(d['latency.p999_ms'])} | {fmt(d['latency.max_ms'])} | {int(d['errors'])} | "
                      f"{fmt(100 * d['cpu.broker_s'] / d['seconds'], 0)}% | {fmt(100 * d['cpu.responder_s'] / d['seconds'], 0)}% |")
        if g:
            md.append("\nPer operation (gateway): " + "; ".join(
                f"{op} p50 {fmt(g.get(f'op.{op}.p50_ms'))} / p99 {fmt(g.get(f'op.{op}.p99_ms'))} ms"
                for op in ("login", "join", "join_topic", "subscribe", "leave")) + ".")
        md.append("")

    md.append("## 4. State scale and memory\n")
    if pop:
        md.append("`rtm-bench-state` (Google Benchmark) over `rtm::gateway::State` with the gateway's default limits: "
                  "100k sessions (uids `user-000123`, 16-hex session ids), each in one channel of 20 members (5,000 "
                  "channels) as a publisher of `input`, each subscribed to 10 other members' `input`: "
                  f"{fmt(pop['subscriptions'])} subscriptions. Memory is the heap in use (mallinfo2) and the resident "
                  "set (/proc/self/statm) before and after each step.\n")
        md.append("| memory | heap | RSS |")
        md.append("| --- | --- | --- |")
        md.append(f"| per idle session (start_session) | {fmt(pop['B_per_session_heap'], 0)} B | {fmt(pop['B_per_session_rss'], 0)} B |")
        md.append(f"| per channel membership (join) | {fmt(pop['B_per_join_heap'], 0)} B | {fmt(pop['B_per_join_rss'], 0)} B |")
        md.append(f"| per topic publisher (join_topic) | {fmt(pop['B_per_publisher_heap'], 0)} B | |")
        md.append(f"| per subscription | {fmt(pop['B_per_subscription_heap'], 1)} B | {fmt(pop['B_per_subscription_rss'], 1)} B |")
        md.append(f"| all of it | {fmt(pop['MB_total_heap'], 1)} MB | {fmt(pop['MB_total_rss'], 1)} MB |")
        if ses:
            md.append(f"| gateway process, {int(ses['count']):,} real logins (RSS delta) | | {fmt(ses['bytes_per_session'], 0)} B per session |")
        md.append("")
        md.append("| operation at that scale | time | split |")
        md.append("| --- | --- | --- |")

        def t(name):
            b = bms.get(name)
            return None if not b else (b["real_time"], b.get("time_unit", "ns"), b)

        for name, label, split in (("BM_StartEndSession", "start_session + end_session (login/logout)", ("start_session_ns", "end_session_ns")),
                                   ("BM_JoinLeave/20", "join + leave, channel of 20", ("join_ns", "leave_ns")),
                                   ("BM_JoinLeave/1000", "join + leave, channel of 1,000", ("join_ns", "leave_ns")),
                                   ("BM_JoinLeave/5000", "join + leave, channel of 5,000", ("join_ns", "leave_ns")),
                                   ("BM_SubscribeUnsubscribe", "subscribe + unsubscribe one publisher", ("subscribe_ns", "unsubscribe_ns")),
                                   ("BM_HashFind", "baseline: one find in an unordered_map of 100k strings", None)):
            r = t(name)
            if not r:
                continue
            v, unit, b = r
            sp = "" if not split else f"{split[0][:-3]} {fmt(b.get(split[0]), 0)} ns, {split[1][:-3]} {fmt(b.get(split[1]), 0)} ns"
            md.append(f"| {label} | {fmt(v, 0)} {unit} | {sp} |")
        md.append("\nThe split is timed inside each iteration; the first half pays the cache misses of reaching "
                  "the channel, the second finds it warm.\n")

    md += enf_md
    md += web_md
    header = md[:md.index("## Targets (issue 7)\n")]
    if enf_md:
        # The enforcement section on its own page too, with its targets.
        enf_page = [line.replace("# Benchmark results", "# Benchmark results: broker-enforced channels", 1)
                    for line in header]
        enf_page += ["## Targets (issue 13)\n", "| target | measured | baseline (same run) | result |",
                     "| --- | --- | --- | --- |"]
        enf_page += ["| " + " | ".join(t) + " |" for t in enf_targets]
        enf_page += [""] + enf_md
        with open(os.path.join(out, "enforcement.md"), "w") as f:
            f.write("\n".join(enf_page) + "\n")
        print(f"report: {os.path.join(out, 'enforcement.md')}")
    if others:
        text = "\n".join(md) + "\n"
        with open(os.path.join(out, "results.md"), "w") as f:
            f.write(text)
        print(f"report: {os.path.join(out, 'results.md')}")
    for t_ in targets:
        print(f"  {t_[3].strip('*'):5} {t_[0]}: {t_[1]}" + (f"  [baseline {t_[2]}]" if t_[2] else ""))

    if args.readme:
        update_readme(args.readme, targets, now, commit, merge_enforcement=not others)


ENF_PREFIX = "enforcement:"  # first words of the enforcement rows (README merges by it)
ENF_GRANTS = (100, 1000, 10000)


def enforcement_report(raw, m):
    """Issue 13: the project's plugin against plain Mosquitto (throughput, coplay latency),
    grant propagation through the gateway, and one grant change (our records against
    Mosquitto's dynamic security plugin). Returns (targets, markdown lines, csv rows)."""
    def E(name):
        return load(os.path.join(raw, f"enf-{name}.json"))

    tp = {c: E(f"throughput-{c}") for c in ("plain", "plugin", "enforcing")}
    lat = {c: E(f"latency-{c}") for c in ("plain", "enforcing")}
    prop = E("propagation")
    changes = {(sys_, n): E(f"changes-{sys_}-{n}") for sys_ in ("records", "dynsec") for n in ENF_GRANTS}
    rows, targets, md = [], [], []
    for name, d in list(tp.items()) + [(f"latency {k}", v) for k, v in lat.items()] + [("propagation", prop)] + \
            [(f"changes {k[0]} {k[1]}", v) for k, v in changes.items()]:
        if d:
            for k, v in d.items():
                if isinstance(v, (int, float)):
                    rows.append(("enforcement", name, k, v))
    if not any(tp.values()) and not any(lat.values()) and not prop and not any(changes.values()):
        return targets, md, rows

    def rate(c):
        d = tp.get(c)
        return d.get("rate") if d and d.get("rate") else None

    a, b, c = rate("plain"), rate("plugin"), rate("enforcing")
    if a and c:
        ca, cb = c / a, (c / b if b else None)
        targets.append((f"{ENF_PREFIX} direct throughput with the enforcing plugin ≥ 0.9 × without (QoS 0, 64 B)",
                        f"{fmt(ca)} × ({fmt(c)} msg/s); × (b): {fmt(cb)}",
                        f"(a) plain Mosquitto {fmt(a)} msg/s; (b) plugin, not enforcing {fmt(b)} msg/s",
                        verdict(ca >= 0.9)))
    la, lc = lat.get("plain"), lat.get("enforcing")
    if la and lc:
        a50, a99, c50, c99 = la["latency.p50_ms"], la["latency.p99_ms"], lc["latency.p50_ms"], lc["latency.p99_ms"]
        lost = int(lc.get("lost", 0)) + int(lc.get("reordered", 0))
        ok = abs(c50 - a50) <= max(0.05, 0.1 * a50) and abs(c99 - a99) <= max(0.5, 0.25 * a99) and lost == 0
        targets.append((f"{ENF_PREFIX} coplay 100 pairs with enforcement within noise of without "
                        "(p50 within max(0.05 ms, 10%), p99 within max(0.5 ms, 25%), none lost)",
                        f"p50 {fmt(c50, 3)} / p99 {fmt(c99, 3)} ms, {lost} lost + reordered",
                        f"(a) p50 {fmt(a50, 3)} / p99 {fmt(a99, 3)} ms", verdict(ok)))
    if prop:
        targets.append((f"{ENF_PREFIX} grant propagation, subscribe answer → first delivered message "
                        f"({int(prop['repeats'])} rounds, publisher every {fmt(prop['period_us'] / 1000, 0)} ms)",
                        f"p50 {fmt(prop['from_answer.p50_ms'], 3)} / p99 {fmt(prop['from_answer.p99_ms'], 3)} ms "
                        f"(from the request: {fmt(prop['from_request.p50_ms'], 3)} / {fmt(prop['from_request.p99_ms'], 3)})",
                        f"{int(prop['missing'])} missing", "figure" if int(prop["missing"]) == 0 else "**miss**"))
    r10, d10 = changes.get(("records", 10000)), changes.get(("dynsec", 10000))
    if r10 and d10:
        targets.append((f"{ENF_PREFIX} one grant change with 10,000 grants in place: our record vs dynamic security",
                        f"record p50 {fmt(r10['change.p50_ms'], 3)} / p99 {fmt(r10['change.p99_ms'], 3)} ms, "
                        f"broker CPU {fmt(r10['cpu.broker_ms_per_change'], 3)} ms",
                        f"dynsec p50 {fmt(d10['change.p50_ms'], 2)} / p99 {fmt(d10['change.p99_ms'], 2)} ms, "
                        f"broker CPU {fmt(d10['cpu.broker_ms_per_change'], 2)} ms, file {fmt(d10['file_bytes'] / 1e6, 1)} MB",
                        "figure"))

    md.append("## 5. Broker-enforced channels (issue 13)\n")
    md.append("Three brokers started in turn on free ports, the same clients against each: (a) plain Mosquitto, "
              "anonymous clients (the direct baseline of section 2); (b) Mosquitto with `rtm_mosquitto_auth`, token "
              "logins (username = uid, password = a JWT) and the shipped ACL (`docker/mosquitto/acl`), grants not "
              "enforced; (c) the same with `plugin_opt_enforce_grants true`, after a full set of grant records fed "
              "as `rtm-gateway` that grants the bench's publishers and subscribers next to 10,000 other users in "
              "channels of 20 (each reading 10 members). Method and why the grants are fed directly: "
              "[bench/README.md](../README.md), section 5. "
              f"Load average at the start of this group: {m.get('enf_loadavg', '?')}.\n")
    if any(tp.values()):
        md.append("| broker | msg/s (QoS 0, 64 B, direct) | × (a) | broker busy at that rate | broker CPU per message | steps |")
        md.append("| --- | --- | --- | --- | --- | --- |")
        names = {"plain": "(a) plain Mosquitto (baseline)", "plugin": "(b) plugin, token logins + ACL",
                 "enforcing": "(c) plugin enforcing grants"}
        for cfg in ("plain", "plugin", "enforcing"):
            d = tp.get(cfg)
            if not d:
                continue
            r = d.get("rate") or 0
            per = d.get("cpu.broker_s_per_100k")
            busy = per * r / 1e5 if per is not None and r else None
            md.append(f"| {names[cfg]} | {fmt(r)} | {fmt(r / a if a and r else None)} | "
                      f"{fmt(100 * busy, 0) + '%' if busy is not None else '–'} | "
                      f"{fmt(10 * per, 2) + ' µs' if per is not None else '–'} | {d.get('steps', '').strip().rstrip(';')} |")
        if a and c:
            md.append(f"\nc/a = {fmt(c / a)}, c/b = {fmt(c / b) if b else '–'}. Broker CPU per message: its utime + "
                      "stime from /proc over the best step, per message received. The steps are ×1.1 apart with one "
                      "step between the last clean and the first failed rate, so a rate has about 5% resolution.\n")
    if la or lc:
        md.append("Coplay latency, 100 pairs at 60 Hz, direct path (players publish `rtm/ch/{room}/input/{player}`; "
                  "on (c) players and hosts are token users, each host granted its player's input):\n")
        md.append("| broker | p50 ms | p99 ms | p99.9 ms | max ms | lost | reordered | broker CPU | sender lateness p99 ms |")
        md.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for cfg, name in (("plain", "(a) plain Mosquitto (baseline)"), ("enforcing", "(c) plugin enforcing grants")):
            d = lat.get(cfg)
            if not d:
                continue
            wall = d.get("cpu.wall_s") or 1
            md.append(f"| {name} | {fmt(d['latency.p50_ms'], 3)} | {fmt(d['latency.p99_ms'], 3)} | "
                      f"{fmt(d['latency.p999_ms'], 3)} | {fmt(d['latency.max_ms'], 3)} | {int(d['lost'])}/{int(d['expected'])} | "
                      f"{int(d['reordered'])} | {fmt(100 * d['cpu.broker_s'] / wall, 0)}% | {fmt(d['sender_lateness.p99_ms'], 3)} |")
        md.append("")
    if prop:
        md.append(f"Grant propagation through the real gateway (`enforcement.publish_grants: true`, broker (c)): a "
                  f"publisher sends one QoS 0 message every {fmt(prop['period_us'] / 1000, 0)} ms on its stream; a "
                  "subscriber, subscribed at MQTT level to that stream all along, sends `subscribe` for it, then "
                  f"`unsubscribe` and waits until the stream has stopped; {int(prop['repeats'])} rounds. The gateway "
                  "publishes the grant record before the answer on the same connection, so the grant is in force "
                  "when the answer leaves; the first message then waits for the publisher's next send (up to one "
                  "period).\n")
        md.append("| interval | p50 ms | p90 ms | p99 ms | max ms |")
        md.append("| --- | --- | --- | --- | --- |")
        for key, name in (("from_answer", "subscribe answer received → first message delivered"),
                          ("from_request", "subscribe request sent → first message delivered"),
                          ("revoke_lag", "unsubscribe answer received → last message delivered (0: none after it)")):
            md.append(f"| {name} | {fmt(prop[f'{key}.p50_ms'], 3)} | {fmt(prop[f'{key}.p90_ms'], 3)} | "
                      f"{fmt(prop[f'{key}.p99_ms'], 3)} | {fmt(prop[f'{key}.max_ms'], 3)} |")
        md.append(f"\nMissing (no message within 2 s of the answer): {int(prop['missing'])}; first message before the "
                  f"answer arrived: {int(prop['early'])}; messages after an unsubscribe answer: {int(prop['after_revoke'])}. "
                  f"Broker CPU {fmt(prop['cpu.broker_s'], 2)} s, gateway {fmt(prop['cpu.gateway_s'], 2)} s over "
                  f"{fmt(prop['seconds'], 1)} s.\n")
    if any(changes.values()):
        md.append("One grant change with N grants in place. **Records** (our plugin, broker (c)): a full set of N read "
                  "grants, then per change one `M` record (the reader's grant moves to another publisher) written with a "
                  "marker on that publisher's stream by the same `rtm-gateway` connection; timed from the write to the "
                  "marker's arrival at the reader (it arrives only once the record is applied); baseline: the marker "
                  "alone on the stream already granted. **Dynamic security** (Mosquitto's "
                  "`mosquitto_dynamic_security.so`): N clients, each with a role of its own holding one ACL "
                  "(`publishClientReceive`), written into its config file before the broker starts; per change an "
                  "`addRoleACL` or `removeRoleACL` published on `$CONTROL/dynamic-security/v1` by the bench's own "
                  "client and timed to its response on `.../response` (the plugin rewrites its whole JSON file before "
                  "it answers); baseline: `getRole`, which changes nothing. Broker CPU per change: utime + stime over "
                  "the changes without the baselines' (dynamic security); for records, over a run of many single-record "
                  "messages in a row (200 per timed change), since one record takes less than /proc's 10 ms tick.\n")
        md.append("| N grants | records: change p50 / p99 ms | marker alone p50 ms | broker CPU per record | full set of N applied | dynsec: change p50 / p99 ms | getRole p50 ms | broker CPU per change | dynsec config file |")
        md.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for n in ENF_GRANTS:
            r, d = changes.get(("records", n)), changes.get(("dynsec", n))
            rc = f"{fmt(r['change.p50_ms'], 3)} / {fmt(r['change.p99_ms'], 3)}" if r else "–"
            rb = fmt(r["baseline.p50_ms"], 3) if r else "–"
            rcpu = f"{fmt(1000 * r['cpu.broker_ms_per_change'], 0)} µs" if r else "–"
            rs = f"{fmt(r['setup_ms'], 1)} ms" if r else "–"
            dc = f"{fmt(d['change.p50_ms'], 2)} / {fmt(d['change.p99_ms'], 2)}" if d else "–"
            db = fmt(d["baseline.p50_ms"], 3) if d else "–"
            dcpu = f"{fmt(d['cpu.broker_ms_per_change'], 2)} ms" if d else "–"
            dfile = f"{fmt(d['file_bytes'] / 1e3, 0)} kB" if d else "–"
            md.append(f"| {n:,} | {rc} | {rb} | {rcpu} | {rs} | {dc} | {db} | {dcpu} | {dfile} |")
        md.append("")
    return targets, md, rows


WEB_SECTION = "## 6. Web: coplay over WebSockets"
# The runs of group web (raw files web-{name}-{pairs}.json), in table order: name, path, transport.
WEB_RUNS = (("direct-tcp", "C++ `rtm-bench latency --path direct` (baseline)", "TCP"),
            ("js-sdk-ws", "JS SDK, Node", "WebSockets"),
            ("js-sdk-tcp", "JS SDK, Node", "TCP (TCP_NODELAY)"),
            ("js-sdk-ws-tcp", "JS SDK, Node", "player WebSockets → host TCP"),
            ("js-sdk-tcp-ws", "JS SDK, Node", "player TCP → host WebSockets"),
            ("mqttjs-ws", "MQTT.js alone, Node (no SDK)", "WebSockets"),
            ("mqttjs-ws1", "MQTT.js alone, one WebSocket frame per packet", "WebSockets"))


def web_report(raw, m, stamp):
    """Issue 18: coplay through Mosquitto's WebSockets listener with Node clients of the JS SDK,
    next to the C++ direct path over TCP of the same run. Returns (targets, markdown lines, csv rows)."""
    runs = {}
    for name, _, _ in WEB_RUNS:
        for pairs in (1, 100):
            d = load(os.path.join(raw, f"web-{name}-{pairs}.json"))
            if d:
                d.update(machine_note(os.path.join(raw, f"web-{name}-{pairs}.machine")))
                runs[(name, pairs)] = d
    rows, targets, md = [], [], []
    if not runs:
        return targets, md, rows
    for (name, pairs), d in runs.items():
        for k, v in d.items():
            if isinstance(v, (int, float)):
                rows.append(("web", f"{name} {pairs} pairs", k, v))

    def ratio(d, base, key):
        return d[key] / base[key] if base and base.get(key) else None

    sdk, base = runs.get(("js-sdk-ws", 100)), runs.get(("direct-tcp", 100))
    if sdk:
        targets.append(("web: coplay 100 pairs, 60 Hz, JS SDK (Node) over WebSockets",
                        f"p50 {fmt(sdk['latency.p50_ms'], 3)} / p99 {fmt(sdk['latency.p99_ms'], 3)} ms "
                        f"({fmt(ratio(sdk, base, 'latency.p50_ms'), 1)}× / {fmt(ratio(sdk, base, 'latency.p99_ms'), 1)}× direct), "
                        f"{int(sdk['lost'])} lost",
                        f"C++ direct over TCP p50 {fmt(base['latency.p50_ms'], 3)} / p99 {fmt(base['latency.p99_ms'], 3)} ms"
                        if base else "", "figure"))

    any_d = next(iter(runs.values()))
    node = next((d["node"] for d in runs.values() if d.get("node")), "?")  # only the Node runs say it
    md.append(WEB_SECTION + "\n")
    md.append(f"Group web of `scripts/bench.sh` ({stamp}); load average at its start {m.get('web_loadavg_start', '?')}, "
              f"at its end {m.get('web_loadavg_end', '?')} (2 cores, shared). One broker (a TCP listener and a "
              "`protocol websockets` listener, `set_tcp_nodelay true`) and one gateway for all the runs, one run "
              f"after the other; each run {fmt(any_d.get('seconds'), 0)} s measured after a warm-up, 60 Hz, frames of "
              f"{int(any_d.get('frame_bytes', 32))} bytes, QoS 0, one connection per player and per host, the pairs "
              "split over client processes of 10 pairs. **JS SDK**: `bench/web/coplay_latency.mjs`, Node "
              f"{node} clients "
              "of `@rtm-mqtt-gateway/sdk` (login with a token, `join`, `joinTopic('input')` / "
              "`subscribeTopic('input', [player])`, `publishTopic` → the host's `'message'` handler, where the "
              "receive time is taken). **MQTT.js alone**: the same program with `--raw`, the player publishing "
              "`rtm/ch/{room}/input/{player}` and the host subscribed to it, without the SDK; *one WebSocket frame "
              "per packet*: the same with `--ws-one-frame` (MQTT.js in Node otherwise sends a PUBLISH as 5 "
              "WebSocket frames). **Baseline**: the C++ "
              "bench's direct path (Paho C++, publish → subscribe on the same topic) over TCP, same broker, same run. "
              "Method and caveats: [bench/README.md](../README.md), section 7.\n")
    if m.get("quick") == "1":
        md.append("**Quick run (BENCH_QUICK=1): a smoke test of the programs; do not read performance into "
                  "these numbers.**\n")
    md.append("| path | transport | pairs | p50 ms | p99 ms | p99.9 ms | max ms | lost | reordered | broker CPU | "
              "client CPU per 1000 frames | sender lateness p99 ms | p50 × direct | p99 × direct | CPU wait (measured part, whole run), load |")
    md.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for pairs in (1, 100):
        base = runs.get(("direct-tcp", pairs))
        for name, path, transport in WEB_RUNS:
            d = runs.get((name, pairs))
            if not d:
                continue
            wall = d.get("cpu.wall_s") or 1
            frames = max(1, int(d["expected"]) - int(d["lost"]))
            md.append(f"| {path} | {transport} | {pairs} | {fmt(d['latency.p50_ms'], 3)} | {fmt(d['latency.p99_ms'], 3)} | "
                      f"{fmt(d['latency.p999_ms'], 3)} | {fmt(d['latency.max_ms'], 3)} | {int(d['lost'])}/{int(d['expected'])} | "
                      f"{int(d['reordered'])} | {fmt(100 * d['cpu.broker_s'] / wall, 0)}% | "
                      f"{fmt(1000 * 1000 * d['cpu.bench_s'] / frames, 1)} ms | {fmt(d['sender_lateness.p99_ms'], 3)} | "
                      f"{fmt(ratio(d, base, 'latency.p50_ms'), 2)} | {fmt(ratio(d, base, 'latency.p99_ms'), 2)} | "
                      f"{pct(d.get('machine.cpu_wait_measured'))}, {pct(d.get('machine.cpu_wait'))}, "
                      f"{fmt(d.get('machine.load1'), 1)} |")
    md.append("\nLatency: one way, player's send → host's handler, CLOCK_MONOTONIC on both ends (Node's "
              "`process.hrtime` and C++'s `steady_clock`). Broker CPU: share of one core over the measured part. "
              "Client CPU: user + system time of all client processes (players and hosts) from the first measured "
              "send to the last send, per 1000 frames delivered. Sender lateness: how late the clients sent "
              "against the schedule; Node's timers have 1 ms resolution, so its senders are up to ~1 ms late by "
              "design (the latency is timed from the actual send). × direct: the ratio to the C++ direct path over "
              "TCP with the same number of pairs in this run. CPU wait: the share of the time in which some "
              "runnable task on this shared machine, the run's own or anyone else's, waited for a CPU (PSI, "
              "/proc/pressure/cpu `some`), over the measured part and over the whole run with its set-up; above a "
              "few %, clients and broker were queuing for the 2 cores. Load: the 1-minute load average after "
              "the run.\n")
    md.append("![coplay over WebSockets, latency by percentile](web_latency.png)\n")
    return targets, md, rows


def plot_web(raw, out, quick):
    """web_latency.png: latency by percentile of each run of group web, 1 and 100 pairs."""
    colors = {"direct-tcp": "#1b9e77", "js-sdk-ws": "#7570b3", "js-sdk-tcp": "#d95f02",
              "js-sdk-ws-tcp": "#a6761d", "js-sdk-tcp-ws": "#666666",
              "mqttjs-ws": "#e7298a", "mqttjs-ws1": "#66a61e"}
    labels = {"direct-tcp": "C++ direct, TCP (baseline)", "js-sdk-ws": "JS SDK, ws://", "js-sdk-tcp": "JS SDK, mqtt://",
              "js-sdk-ws-tcp": "JS SDK, player ws:// -> host mqtt://", "js-sdk-tcp-ws": "JS SDK, player mqtt:// -> host ws://",
              "mqttjs-ws": "MQTT.js alone, ws://", "mqttjs-ws1": "MQTT.js alone, ws://, one frame per packet"}
    series = [(pairs, name, path, transport, os.path.join(raw, f"web-{name}-{pairs}.csv"))
              for pairs in (1, 100) for name, path, transport in WEB_RUNS
              if os.path.exists(os.path.join(raw, f"web-{name}-{pairs}.csv"))]
    if not series:
        return
    gp = os.path.join(raw, "web_latency.gp")
    with open(gp, "w") as g:
        g.write(f'set terminal pngcairo noenhanced size 1200,500 font "sans,10"\nset output "{os.path.join(out, "web_latency.png")}"\n')
        g.write('set datafile separator ","\nset key top left\nset grid\nset logscale y\n')
        g.write('set xtics ("p0" 0, "p90" 1, "p99" 2, "p99.9" 3, "p99.99" 4, "p99.999" 5)\n')
        g.write('set xlabel "percentile"\nset ylabel "one-way latency (ms)"\n')
        g.write(f'set multiplot layout 1,2 title "coplay over WebSockets and TCP, 60 Hz{" (QUICK RUN)" if quick else ""}"\n')
        for pairs in (1, 100):
            mine = [x for x in series if x[0] == pairs]
            if not mine:
                continue
            g.write(f'set title "{pairs} pair{"s" if pairs > 1 else ""}"\n')
            parts = [f'"{f}" using 4:5 skip 1 with lines lw 2 lc rgb "{colors.get(name, "#666666")}" '
                     f'title "{labels.get(name, name)}"' for _, name, _, _, f in mine]
            g.write("plot " + ", \\\n     ".join(parts) + "\n")
        g.write("unset multiplot\n")
    r = subprocess.run(["gnuplot", gp], capture_output=True, text=True)
    if r.returncode != 0:
        print("gnuplot failed:", r.stderr, file=sys.stderr)


def pct(v):
    return "–" if v is None else f"{100 * v:.0f}%"


def machine_note(path):
    """bench.sh's note of how busy the machine was during one run: key=value lines."""
    out = {}
    try:
        with open(path) as f:
            for line in f:
                k, _, v = line.strip().partition("=")
                try:
                    out[f"machine.{k}"] = float(v)
                except ValueError:
                    pass
    except OSError:
        pass
    return out


def write_csv(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["benchmark", "config", "metric", "value"])
        for r in rows:
            w.writerow(r)


def merge_web(out, web_md, web_rows):
    """A run of group web alone: its section replaces the one in results.md (or is added at the
    end) and its rows replace the "web" rows of results.csv; everything else stays."""
    md_path, csv_path = os.path.join(out, "results.md"), os.path.join(out, "results.csv")
    try:
        with open(md_path) as f:
            lines = f.read().rstrip("\n").split("\n")
    except OSError:
        lines = ["# Benchmark results", ""]
    start = next((i for i, l in enumerate(lines) if l.startswith(WEB_SECTION)), None)
    if start is None:
        lines += [""] + web_md
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        lines = lines[:start] + web_md + lines[end:]
    with open(md_path, "w") as f:
        f.write("\n".join(lines).rstrip("\n") + "\n")
    old = []
    try:
        with open(csv_path, newline="") as f:
            old = [r for r in csv.reader(f)][1:]
    except OSError:
        pass
    write_csv(csv_path, [r for r in old if r and r[0] != "web"] + list(web_rows))
    print(f"report: the web section of {md_path} and the web rows of {csv_path} (the rest kept)")


def plot(raw, out, lat, quick):
    series = []
    colors = {"direct": "#1b9e77", "sdk": "#7570b3", "bridge": "#d95f02"}
    names = {"direct": "(a) direct", "sdk": "(b) SDK", "bridge": "(c) bridge"}
    for pairs in (1, 100):
        for path in ("direct", "sdk", "bridge"):
            f = os.path.join(raw, f"latency-{path}-{pairs}.csv")
            if os.path.exists(f):
                series.append((pairs, path, f))
    if not series:
        return
    gp = os.path.join(raw, "latency.gp")
    png = os.path.join(out, "latency.png")
    with open(gp, "w") as g:
        g.write(f'set terminal pngcairo size 1200,500 font "sans,10"\nset output "{png}"\n')
        g.write('set datafile separator ","\nset key top left\nset grid\nset logscale y\n')
        g.write('set xtics ("p0" 0, "p90" 1, "p99" 2, "p99.9" 3, "p99.99" 4, "p99.999" 5)\n')
        g.write('set xlabel "percentile"\nset ylabel "one-way latency (ms)"\n')
        g.write(f'set multiplot layout 1,2 title "coplay latency, 60 Hz{" (QUICK RUN)" if quick else ""}"\n')
        for pairs in (1, 100):
            mine = [s for s in series if s[0] == pairs]
            if not mine:
                continue
            g.write(f'set title "{pairs} pair{"s" if pairs > 1 else ""}"\n')
            parts = [f'"{f}" using 4:5 skip 1 with lines lw 2 lc rgb "{colors[p]}" title "{names[p]}"'
                     for _, p, f in mine]
            g.write("plot " + ", \\\n     ".join(parts) + "\n")
        g.write("unset multiplot\n")
    r = subprocess.run(["gnuplot", gp], capture_output=True, text=True)
    if r.returncode != 0:
        print("gnuplot failed:", r.stderr, file=sys.stderr)


def update_readme(path, targets, now, commit, merge_enforcement=False):
    """Replaces the table between the bench markers. merge_enforcement (a run of the
    enforcement group alone): only the enforcement rows are replaced, the others stay."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return
    if README_BEGIN not in text or README_END not in text:
        print(f"report: {path} has no bench markers; not updated")
        return
    start, end = text.index(README_BEGIN), text.index(README_END) + len(README_END)
    enf_note = (f"Rows starting with \"{ENF_PREFIX}\": run of the enforcement group ({now}, commit `{commit}`); "
                "details in [bench/results/enforcement.md](bench/results/enforcement.md).")
    if merge_enforcement:
        old = text[start:end].split("\n")
        rows = [l for l in old if l.startswith("| ") and not l.startswith("| target |")
                and not l.startswith("| --- |") and not l.startswith("| " + ENF_PREFIX)]
        intro = next((l for l in old if l.startswith("Latest full run")), "Latest full run: none yet.")
        rows += ["| " + " | ".join(t) + " |" for t in targets]
    else:
        intro = (f"Latest full run ({now}, commit `{commit}`); details in "
                 "[bench/results/results.md](bench/results/results.md):")
        rows = ["| " + " | ".join(t) + " |" for t in targets]
    lines = [README_BEGIN, "", intro, ""]
    if merge_enforcement and any(t[0].startswith(ENF_PREFIX) for t in targets):
        lines += [enf_note, ""]
    lines += ["| target | measured | baseline (same run) | result |", "| --- | --- | --- | --- |"]
    lines += rows
    lines += ["", "![coplay latency by percentile](bench/results/latency.png)", "", README_END]
    with open(path, "w") as f:
        f.write(text[:start] + "\n".join(lines) + text[end:])
    print(f"report: updated the benchmark table in {path}")


if __name__ == "__main__":
    main()
