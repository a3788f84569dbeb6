"""Writes python/cra/conformance_cases/trace.json (the hash and chain conformance
cases) from the vector files beside this script.

    python specs/vectors/make_trace_cases.py > python/cra/conformance_cases/trace.json
"""

import json
from pathlib import Path

HERE = Path(__file__).parent


def main():
    hashes = json.loads((HERE / "hash-vectors.json").read_text())
    chains = json.loads((HERE / "chains.json").read_text())
    cases = []
    for v in hashes["cases"]:
        cases.append({
            "id": f"hash-{v['name']}",
            "kind": "hash",
            "event": v["event"],
            "expect": {"sha256": v["sha256"], "blake3": v["blake3"]},
        })
    for c in chains["cases"]:
        cases.append({
            "id": f"chain-{c['name']}",
            "kind": "chain",
            "events": c["events"],
            "expect": {"valid": c["valid"], "error": c["error"], "index": c["index"]},
        })
    print(json.dumps({"group": "trace", "cases": cases}, indent=1, ensure_ascii=True))


if __name__ == "__main__":
    main()
