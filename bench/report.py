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
if rows:
    labels = [b for b in backends if any(r["label"] == b for r in rows)]
    users = next(r["users"] for r in rows if r["kind"] == "load")
    print(f"\n### SCIM with {users:,} users (8 connections; ms)\n")
    print("| query | matches | " + " | ".join(f"{b} p50 | {b} p99" for b in labels) + " |")
    print("|---" * (2 + 2 * len(labels)) + "|")
    queries = list(dict.fromkeys(r["query"] for r in rows if r["kind"] == "query"))
    for q in queries:
        by = {r["label"]: r for r in rows if r["kind"] == "query" and r["query"] == q}
        total = next(iter(by.values()))["total"]
        cells = [
            f"{by[b]['p50']:.1f} | {by[b]['p99']:.1f}" if b in by else "– | –" for b in labels
        ]
        print(f"| `{q}` | {total:,} | " + " | ".join(cells) + " |")
    loads = {r["label"]: r["rate"] for r in rows if r["kind"] == "load"}
    print("| loading over SCIM (users/s) | | " + " | ".join(f"{loads[b]:,.0f} | " for b in labels) + " |")
