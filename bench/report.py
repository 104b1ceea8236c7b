"""Prints bench/run's tables: the side-by-side rates with ratios against the peer, and the
SCIM scale results with one column pair per backend. Arguments: the work directory and the
backends, as bench/run passes them."""

import json
import sys
from pathlib import Path

work = Path(sys.argv[1])
backends = sys.argv[2].split()

rates_file = work / "rates"
if rates_file.exists():
    rates = {}
    for line in rates_file.read_text().splitlines():
        *label, value = line.split()
        rates[" ".join(label)] = float(value)
    print("\n### Side by side (req/s; ratio = ours / peer; RSS after the load)\n")
    header = "| endpoint | peer | " + " | ".join(f"{b} | ratio" for b in backends) + " |"
    print(header)
    print("|---" * (2 + 2 * len(backends)) + "|")
    for endpoint in ["discovery", "jwks", "token"]:
        peer = rates[f"peer {endpoint}"]
        cells = [f"{rates[f'{b} {endpoint}']:,.0f} | {rates[f'{b} {endpoint}'] / peer:.2f}" for b in backends]
        print(f"| {endpoint} | {peer:,.0f} | " + " | ".join(cells) + " |")
    peer = rates["peer rss"]
    cells = [f"{rates[f'{b} rss']:.1f} MiB | {rates[f'{b} rss'] / peer:.2f}" for b in backends]
    print(f"| RSS | {peer:.1f} MiB | " + " | ".join(cells) + " |")

results = work / "results.jsonl"
rows = [json.loads(line) for line in results.read_text().splitlines()] if results.exists() else []
queries = [r for r in rows if r["kind"] == "query"]
if queries:
    labels = [b for b in backends if any(r["label"] == b for r in queries)]
    users = next(r["users"] for r in rows if r["kind"] == "load")
    loads = {r["label"]: r["rate"] for r in rows if r["kind"] == "load"}
    summaries = {r["label"]: r for r in rows if r["kind"] == "summary"}
    print(f"\n### SCIM with {users:,} users: the covering set (8 connections; ms)\n")
    print("| backend | queries | p99 ≥ 20 ms | median p99 | worst p99 | loading (users/s) |")
    print("|---|---:|---:|---:|---:|---:|")
    for b in labels:
        s_ = summaries.get(b)
        if s_:
            print(f"| {b} | {s_['queries']} | {s_['over']} | {s_['median']:.1f} | {s_['worst']:.1f} | {loads.get(b, 0):,.0f} |")
    for b in labels:
        mine = sorted((r for r in queries if r["label"] == b), key=lambda r: -r["p99"])
        print(f"\n#### {b}: the slowest twenty\n")
        print("| query | matches | p50 | p99 |")
        print("|---|---:|---:|---:|")
        for r in mine[:20]:
            print(f"| `{r['query']}` | {r['total']:,} | {r['p50']:.1f} | {r['p99']:.1f} |")

overload = [r for r in rows if r["kind"] == "overload"]
if overload:
    print("\n### Sign-ins beyond capacity (password steps, server on one core)\n")
    print("| backend | load | offered/s | goodput/s | goodput / Argon2 bound | refused (503) | p99 answered |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in overload:
        print(f"| {r['label']} | {r['factor']:.0f}× | {r['offered']:.0f} | {r['goodput']:.1f} | {r['ratio']:.2f} | {r['refused']} | {r['p99']:.0f} ms |")
