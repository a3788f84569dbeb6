"""The stand-alone reference verifier (specs/reference/merkle_verify.py)
against the published vectors in specs/vectors/merkle.json, plus proofs it
must refuse."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "specs" / "vectors" / "merkle.json"


def _load() -> ModuleType:
    path = ROOT / "specs" / "reference" / "merkle_verify.py"
    spec = importlib.util.spec_from_file_location("merkle_verify", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


mv = _load()
DOC = json.loads(VECTORS.read_text(encoding="utf-8"))
ROOTS = {r["tree_size"]: r["root"] for r in DOC["roots"]}
INPUTS = DOC["leaf_inputs"]


def test_the_vectors_name_their_source() -> None:
    assert "transparency-dev/merkle" in DOC["source"]["repository"]
    assert len(DOC["source"]["commit"]) == 40
    assert DOC["hash"] == "sha256"


def test_empty_tree_and_roots() -> None:
    assert ROOTS[0] == mv.EMPTY_ROOT_HEX == mv.root([])
    for size in range(9):
        assert mv.root(INPUTS[:size]) == ROOTS[size], size


@pytest.mark.parametrize(
    "case", DOC["inclusion"], ids=lambda c: f"{c['leaf_index']}-of-{c['tree_size']}"
)
def test_inclusion(case: dict) -> None:
    i, n, path = case["leaf_index"], case["tree_size"], case["audit_path"]
    assert mv.verify_inclusion(INPUTS[i], i, n, path, ROOTS[n])
    if n > 1:
        assert not mv.verify_inclusion(INPUTS[(i + 1) % n], i, n, path, ROOTS[n])
    assert not mv.verify_inclusion(INPUTS[i], i, n, [*path, ROOTS[n]], ROOTS[n])
    assert not mv.verify_inclusion(INPUTS[i], n, n, path, ROOTS[n])


@pytest.mark.parametrize(
    "case", DOC["consistency"], ids=lambda c: f"{c['first_size']}-to-{c['second_size']}"
)
def test_consistency(case: dict) -> None:
    m, n, proof = case["first_size"], case["second_size"], case["proof"]
    assert mv.verify_consistency(m, n, ROOTS[m], ROOTS[n], proof)
    for k, h in enumerate(proof):
        bad = list(proof)
        bad[k] = ("0" if h[0] != "0" else "1") + h[1:]
        assert not mv.verify_consistency(m, n, ROOTS[m], ROOTS[n], bad)
    if m < n:
        assert not mv.verify_consistency(m, n, ROOTS[n], ROOTS[m], proof)
        assert not mv.verify_consistency(m, n, ROOTS[m], ROOTS[n], [])


@pytest.mark.parametrize("probe", DOC["inclusion_probes"], ids=lambda p: p["file"])
def test_inclusion_probes(probe: dict) -> None:
    got = mv.verify_inclusion_hash(
        probe["leaf_hash"],
        probe["leaf_index"],
        probe["tree_size"],
        probe["audit_path"],
        probe["root"],
    )
    assert got == probe["valid"], probe["desc"]


@pytest.mark.parametrize("probe", DOC["consistency_probes"], ids=lambda p: p["file"])
def test_consistency_probes(probe: dict) -> None:
    got = mv.verify_consistency(
        probe["first_size"],
        probe["second_size"],
        probe["first_root"],
        probe["second_root"],
        probe["proof"],
    )
    want = probe["valid"] and probe["file"] not in mv.KNOWN_DIVERGENCE
    assert got == want, probe["desc"]


def test_the_one_divergence_is_a_malformed_root() -> None:
    (probe,) = [p for p in DOC["consistency_probes"] if p["file"] in mv.KNOWN_DIVERGENCE]
    assert probe["valid"] and len(bytes.fromhex(probe["first_root"])) != 32


def test_main_checks_the_whole_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert mv.main(["merkle_verify.py", str(VECTORS)]) == 0
    assert "FAIL" not in capsys.readouterr().out
    assert mv.check_vectors(DOC) == []
