"""The Rust crates' reference fixtures, proven: each crate's
``tests/reference.py`` is rerun into a temporary file and must reproduce the
committed ``tests/reference.json`` that its ``tests/reference.rs`` checks
against, so every expected value there is what the reference libraries
compute (keel-stats: numpy, scipy, statsmodels; keel-quality: scikit-learn,
fairlearn, numpy), not a hand-edited number.

* With the library versions recorded in the fixture the output must be
  byte-for-byte identical, or differ only in the last bits of floating-point
  results (1e-12 relative): numpy and scipy pick their SIMD kernels by CPU,
  so sums come out a rounding apart on another machine.
* With other versions (an unpinned library moved on) the datasets must still
  be identical and every number equal to 1e-9 relative; the fixture should
  then be regenerated with the new versions.

Needs no Keel server or binary.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
CRATES = ["keel-stats", "keel-quality"]


def fixture(crate: str) -> Path:
    return REPO_ROOT / "crates" / crate / "tests" / "reference.json"


def regenerate(crate: str, tmp_path: Path) -> Path:
    script = REPO_ROOT / "crates" / crate / "tests" / "reference.py"
    out = tmp_path / "reference.json"
    res = subprocess.run([sys.executable, str(script), "--out", str(out)],
                         capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, f"{crate}'s reference.py failed:\n{res.stderr}"
    return out


def assert_close(fresh, committed, path="$", rel_tol=1e-9):
    """Same structure; numbers equal to `rel_tol` relative; everything else equal."""
    if isinstance(committed, dict):
        assert isinstance(fresh, dict) and fresh.keys() == committed.keys(), path
        for key in committed:
            assert_close(fresh[key], committed[key], f"{path}.{key}", rel_tol)
    elif isinstance(committed, list):
        assert isinstance(fresh, list) and len(fresh) == len(committed), path
        for i, (a, b) in enumerate(zip(fresh, committed)):
            assert_close(a, b, f"{path}[{i}]", rel_tol)
    elif isinstance(committed, float):
        assert math.isclose(fresh, committed, rel_tol=rel_tol, abs_tol=1e-300), (
            f"{path}: fresh {fresh!r} != committed {committed!r} (regenerate reference.json "
            "with reference.py; do not edit it by hand)")
    else:
        assert fresh == committed, f"{path}: fresh {fresh!r} != committed {committed!r}"


@pytest.mark.parametrize("crate", CRATES)
def test_reference_json_is_what_the_libraries_compute(crate, tmp_path):
    fresh_path = regenerate(crate, tmp_path)
    fresh = json.loads(fresh_path.read_text())
    committed = json.loads(fixture(crate).read_text())
    if fresh["versions"] == committed["versions"]:
        if fresh_path.read_bytes() != fixture(crate).read_bytes():
            # Not a hand edit unless a number moved beyond rounding.
            assert_close(fresh, committed, rel_tol=1e-12)
    else:
        print(f"library versions differ from the fixture's: {fresh['versions']} vs {committed['versions']}")
        fresh.pop("versions")
        committed.pop("versions")
        assert_close(fresh, committed)


def test_stats_fixture_covers_every_checked_function():
    committed = json.loads(fixture("keel-stats").read_text())
    assert set(committed) >= {"versions", "special", "proportions", "welch", "srm",
                              "msprt", "cuped", "bayes", "ope", "twosample"}
    assert set(committed["versions"]) == {"numpy", "scipy", "statsmodels"}
    # keel_stats::twosample: each function reference.rs checks has cases.
    twosample = committed["twosample"]
    assert set(twosample) >= {"datasets", "ks_2samp", "kstwo_sf", "cdf_distances", "anderson_ksamp",
                              "cramervonmises_2samp", "chisquare", "chi2_contingency", "jensenshannon",
                              "evidently"}
    assert all(twosample[key] for key in twosample)
    assert set(twosample["evidently"]) == {"histograms", "z_test"}
    # Both p-value paths of the tests that have two, and all three kinds of
    # anderson_ksamp p-value (capped, floored, interpolated).
    for key in ["ks_2samp", "cramervonmises_2samp"]:
        assert {case["method"] for case in twosample[key]} == {"exact", "asymptotic"}, key
    ad = [case["p_value"] for case in twosample["anderson_ksamp"]]
    assert 0.25 in ad and 0.001 in ad and any(0.001 < p < 0.25 for p in ad)


def test_quality_fixture_covers_every_checked_metric():
    committed = json.loads(fixture("keel-quality").read_text())
    assert set(committed) >= {"versions", "classification", "regression", "ranking", "fairness"}
    assert set(committed["classification"]) == {"binary", "multiclass"}
    assert set(committed["versions"]) == {"numpy", "scikit-learn", "fairlearn", "pandas"}
