"""Policy inference latency on CPU (IDM and goal policy, cpu_tiny), per query and per action.

    python benchmarks/policy_speed.py              # ~10 s

Goal: < 20 ms per action on CPU. A query returns a chunk of c actions; the executor runs the
chunk, so the cost per executed action is the query time / c (both are printed). The last line
is machine-readable:
    idm_ms_per_query=<x> goal_ms_per_query=<x> worst_ms_per_query=<x>
"""

from __future__ import annotations

import argparse

from policies.latency import measure_latency, random_policy


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="cpu_tiny", choices=["cpu_tiny", "gpu"])
    p.add_argument("--queries", type=int, default=100)
    args = p.parse_args()
    print("| policy | threads | ms per query (median) | p90 | ms per action | goal < 20 ms: ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    per_query, worst = {}, 0.0
    for kind in ("idm", "goal"):
        policy = random_policy(kind, args.preset)
        for threads in (1, 2):
            r = measure_latency(policy, threads, args.queries)
            print(f"| {kind} (chunk {policy.config.chunk}) | {threads} | {r['ms_per_query']:.2f} | {r['p90_ms']:.2f} | "
                  f"{r['ms_per_action']:.2f} | {20 / r['ms_per_query']:.0f}x per query |")
            per_query[kind] = min(per_query.get(kind, float("inf")), r["ms_per_query"])
            worst = max(worst, r["ms_per_query"])
    print(f"idm_ms_per_query={per_query['idm']:.2f} goal_ms_per_query={per_query['goal']:.2f} "
          f"worst_ms_per_query={worst:.2f}")


if __name__ == "__main__":
    main()
