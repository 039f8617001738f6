#!/usr/bin/env python3
"""Summary of bench/vm_pressure.sh's guest output (stdin): one markdown table per scenario."""
import json
import re
import statistics
import sys
from datetime import datetime


def parse_time(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def pct(values, p):
    values = sorted(values)
    if not values:
        return None
    return values[min(len(values) - 1, max(0, round(len(values) * p / 100 + 0.5) - 1))]


solo, memory, acts, oomd_kills, cpu, cpu_failed = [], {}, {}, {}, {}, {}
for line in sys.stdin:
    line = line.rstrip("\n")
    fields = line.split()
    if line.startswith("SOLO ") and "p99_us" in fields:
        solo.append(int(fields[fields.index("p99_us") + 1]))
    elif line.startswith("M "):
        mode, trial = fields[1], int(fields[2])
        row = {k: int(fields[fields.index(k) + 1]) for k in ("oom_kills", "hogs_killed", "hogs_ok")}
        row["hung"] = int(fields[fields.index("hung") + 1]) if "hung" in fields else 0
        row["p99_us"] = int(fields[fields.index("p99_us") + 1]) if "p99_us" in fields else None
        memory.setdefault(mode, []).append(row)
    elif line.startswith("E "):
        trial = int(fields[1])
        body = line.split(" ", 2)[2] if len(fields) > 2 else ""
        try:
            events = json.loads(body)["result"]["events"]
        except (ValueError, KeyError, TypeError):
            continue
        mine = re.compile(rf"^(hog|probe)-{trial}(-|$)")
        delays = []
        for e in events:
            d = e.get("details") or {}
            if d.get("undo") or not d.get("signal_crossed") or not mine.match(e.get("workflow_id", "")):
                continue
            if "time_to_act_ms" in d:
                delays.append((d["time_to_act_ms"] / 1000, d.get("action")))
            else:
                delays.append(((parse_time(d["at"]) - parse_time(d["signal_crossed"])).total_seconds(), d.get("action")))
        if delays:
            acts[trial] = min(delays)
    elif line.startswith("O "):
        oomd_kills[int(fields[1])] = oomd_kills.get(int(fields[1]), 0) + 1
    elif line.startswith("C ") and len(fields) >= 6:
        if fields[4].isdigit():
            cpu.setdefault(fields[1], []).append((int(fields[4]), fields[6] if len(fields) > 6 else "none"))
        else:  # the step failed or ran past its timeout: counted, never averaged in
            cpu_failed[fields[1]] = cpu_failed.get(fields[1], 0) + 1

solo_p99 = statistics.median(solo) if solo else None
print("\nmemory (three 250 MiB low hogs + a critical probe in 700 MiB; per trial):")
print("| mode | trials | kernel OOM kills | hogs killed | hogs still waiting at 5 min | hogs finished intact | trials with no kill | probe p99 median (max) | p99 / solo |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for mode in ("resmgr", "kernel", "oomd"):
    rows = memory.get(mode, [])
    if not rows:
        continue
    p99s = [r["p99_us"] for r in rows if r["p99_us"]]
    clean = sum(1 for r in rows if r["oom_kills"] == 0 and r["hogs_killed"] == 0)
    med = statistics.median(p99s) if p99s else None
    ratio = f"{med / solo_p99:.2f}x" if med and solo_p99 else "n/a"
    print(f"| {mode} | {len(rows)} | {sum(r['oom_kills'] for r in rows)} | {sum(r['hogs_killed'] for r in rows)} | {sum(r['hung'] for r in rows)} | "
          f"{sum(r['hogs_ok'] for r in rows)} of {3 * len(rows)} | {clean} | "
          f"{med / 1000 if med else 'n/a'} ms ({max(p99s) / 1000 if p99s else 'n/a'} ms) | {ratio} |")
print(f"probe alone: p99 {solo_p99 / 1000 if solo_p99 else 'n/a'} ms (median of {len(solo)} runs)")
if acts:
    delays = [d for d, _ in acts.values()]
    print(f"resmgr: first step after the signal crossed its threshold, {len(delays)} trials: "
          f"p50 {pct(delays, 50):.2f} s, p95 {pct(delays, 95):.2f} s, max {max(delays):.2f} s "
          f"(first actions: {sorted(set(a for _, a in acts.values()))})")
if "oomd" in memory:
    print(f"systemd-oomd killed in {len(oomd_kills)} of {len(memory['oomd'])} trials ({sum(oomd_kills.values())} kill lines)")
if cpu:
    print("\ncpu (critical fixed-work step; six low spinners beside it):")
    print("| mode | runs | step ms (median) | / solo | limits back after ms |")
    print("|---|---:|---:|---:|---|")
    base = statistics.median(ms for ms, _ in cpu.get("solo", [(0, "")])) or None
    for mode in ("solo", "off", "enforce"):
        runs = cpu.get(mode, [])
        if not runs:
            continue
        med = statistics.median(ms for ms, _ in runs)
        print(f"| {mode} | {len(runs)} | {med} | {f'{med / base:.2f}x' if base else 'n/a'} | {', '.join(r for _, r in runs)} |")
    for mode, n in sorted(cpu_failed.items()):
        print(f"{mode}: {n} step(s) failed or timed out (not in the table)")
