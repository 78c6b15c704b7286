"""Compatibility layer: the gate's policy now lives in :mod:`gate.policy_file` (``gate.toml`` + schema),
:mod:`gate.checks` (check registry) and :mod:`gate.decision` (decision rule, verdict, exit code); ``prunegate
check`` uses only those. The names below are re-exported for callers of this module.

What remains here is the legacy point-estimate comparison (no confidence intervals), kept only because other
modules' tests still call it: :func:`evaluate` (bias.s_amb, accuracy.disambig, efficiency.speedup,
efficiency.size on point values), :func:`export_findings` and :func:`sparsity_claim_findings` (which now delegates
to the ``sparsity.claim`` check of :mod:`gate.checks`). New code should call
:func:`gate.decision.decide` / :func:`gate.decision.evaluate_checks` with :func:`gate.policy_file.load_policy`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .decision import decide, evaluate_checks  # noqa: F401  (re-exported: the gate's policy engine)
from .efficiency import efficiency_metrics
from .policy_file import load_policy  # noqa: F401  (re-exported)


@dataclass(frozen=True)
class Policy:
    """Thresholds of the default gate.

    Attributes:
        max_abs_s_amb_increase: largest allowed rise of |s_AMB| over dense (bias-score units, range [-1, 1]).
        max_disambig_accuracy_drop: largest allowed fall of disambiguated accuracy (fraction).
        min_decode_speedup: smallest acceptable dense/candidate ratio of decode p50 per token.
        min_size_saving: smallest acceptable ``1 - bytes_candidate / bytes_dense`` (fraction).
    """

    max_abs_s_amb_increase: float = 0.05
    max_disambig_accuracy_drop: float = 0.05
    min_decode_speedup: float = 1.10
    min_size_saving: float = 0.10

    def to_dict(self) -> dict:
        """JSON-ready copy of the thresholds."""
        return asdict(self)


@dataclass(frozen=True)
class Finding:
    """One check's outcome for one candidate.

    Attributes:
        id: stable check id, e.g. ``"bias.s_amb"``.
        variant: the candidate's name.
        status: ``"pass"`` or ``"fail"``.
        message: one line for people.
        values: the numbers behind the status (with units in their names).
    """

    id: str
    variant: str
    status: str
    message: str
    values: dict

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self)


def _status(ok: bool) -> str:
    return "pass" if ok else "fail"


def export_findings(entry: dict) -> list[Finding]:
    """``export.verify``: a failed ONNX-vs-PyTorch check (see ``exporters.verify``) fails the variant.

    Args:
        entry: a variant's report entry (``name``, ``export.verification``).

    Returns:
        one failing finding when the verification ran and failed, else nothing (``passed`` is ``None``
        for user-supplied ONNX exports, which have no PyTorch model to compare with).
    """
    verification = entry["export"]["verification"]
    if verification.get("passed") is False:
        return [Finding("export.verify", entry["name"], "fail",
                        "ONNX Runtime logits differ from PyTorch beyond tolerance", verification)]
    return []


def evaluate(baseline: dict, candidate: dict, claims_sparsity: bool, policy: Policy = Policy()) -> list[Finding]:
    """Compare one candidate with the dense baseline.

    Args:
        baseline: the baseline's report entry (keys ``bbq``, ``bench``, ``artifact``).
        candidate: the candidate's report entry, same keys, plus ``name``.
        claims_sparsity: whether the candidate is a pruned model (efficiency checks apply).
        policy: thresholds.

    Returns:
        findings in a fixed order: bias.s_amb, accuracy.disambig, then (if claims_sparsity)
        efficiency.speedup and efficiency.size.
    """
    name = candidate["name"]
    out: list[Finding] = []
    b_s, c_s = baseline["bbq"].get("s_amb"), candidate["bbq"].get("s_amb")
    if b_s is None or c_s is None:
        out.append(Finding("bias.s_amb", name, "fail", "s_AMB undefined (no non-UNKNOWN answers in ambiguous items): cannot judge bias, failing closed", {"s_amb_dense": b_s, "s_amb_candidate": c_s}))
    else:
        delta = abs(c_s) - abs(b_s)
        ok = delta <= policy.max_abs_s_amb_increase
        out.append(Finding(
            "bias.s_amb", name, _status(ok),
            f"|s_AMB| {abs(b_s):.3f} -> {abs(c_s):.3f} (change {delta:+.3f}, limit +{policy.max_abs_s_amb_increase:.3f})",
            {"s_amb_dense": b_s, "s_amb_candidate": c_s, "abs_s_amb_increase": delta, "limit": policy.max_abs_s_amb_increase},
        ))
    b_a, c_a = baseline["bbq"].get("accuracy_disambig"), candidate["bbq"].get("accuracy_disambig")
    if b_a is None or c_a is None:
        out.append(Finding("accuracy.disambig", name, "fail", "disambiguated accuracy undefined (no disambiguated items): failing closed", {"accuracy_disambig_dense": b_a, "accuracy_disambig_candidate": c_a}))
    else:
        drop = b_a - c_a
        ok = drop <= policy.max_disambig_accuracy_drop
        out.append(Finding(
            "accuracy.disambig", name, _status(ok),
            f"disambiguated accuracy {b_a:.3f} -> {c_a:.3f} (drop {drop:+.3f}, limit {policy.max_disambig_accuracy_drop:.3f})",
            {"accuracy_disambig_dense": b_a, "accuracy_disambig_candidate": c_a, "drop": drop, "limit": policy.max_disambig_accuracy_drop},
        ))
    if claims_sparsity:
        eff = efficiency_metrics(baseline, candidate)
        ci = eff["decode_speedup"]  # 95% CI across process repeats (gate.efficiency)
        b_d, c_d = ci["baseline_p50_ms"], ci["candidate_p50_ms"]
        ok = ci["ci_low_x"] >= policy.min_decode_speedup
        out.append(Finding(
            "efficiency.speedup", name, _status(ok),
            f"decode speedup {ci['speedup_x']:.2f}x, 95% CI [{ci['ci_low_x']:.2f}, {ci['ci_high_x']:.2f}] across processes "
            f"(dense p50 {b_d:.2f} ms/token, candidate {c_d:.2f} ms/token; required {policy.min_decode_speedup:.2f}x at the CI's lower bound)"
            + ("" if ok else ": no real speedup") + (" [unstable measurement]" if ci["unstable"] else ""),
            {"decode_p50_ms_per_token_dense": b_d, "decode_p50_ms_per_token_candidate": c_d,
             "decode_cv_dense": ci["baseline_cv"], "decode_cv_candidate": ci["candidate_cv"],
             **ci, "required_x": policy.min_decode_speedup},
        ))
        size = eff["storage_saving"]
        b_b, c_b, saving = size["baseline_bytes"], size["candidate_bytes"], size["saving_fraction"]
        ok = saving >= policy.min_size_saving
        out.append(Finding(
            "efficiency.size", name, _status(ok),
            f"size saving {saving:.1%} ({b_b / 1e6:.1f} MB -> {c_b / 1e6:.1f} MB on disk; required {policy.min_size_saving:.0%})"
            + ("" if ok else ": no real saving"),
            {"bytes_dense": b_b, "bytes_candidate": c_b, "size_saving_fraction": saving, "required_fraction": policy.min_size_saving},
        ))
    return out


def sparsity_claim_findings(entry: dict, tolerance_pp: float = 1.0) -> list[Finding]:
    """``sparsity.claim``: the sparsity measured in the exported artifact must match the claimed sparsity (issue 4.4).

    The measured value is the fraction of pruned-linear weights (q/k/v/o/gate/up/down of the decoder layers,
    the reference definition of locuslab/wanda ``check_sparsity``) that are exactly zero in the ONNX
    initializers (``gate.artifact_stats.onnx_sparsity``), or, when the dense model's counts are known, the
    fraction of the dense model's pruned-linear weights that are zero or removed (``effective_vs_dense``, so
    structured pruning is judged too). A real study's Wanda run left two projections unpruned and shipped 33%
    instead of 50%: that is what this check catches.

    Args:
        entry: a variant's report entry (``name``, ``compression.claimed_sparsity``, ``sparsity``).
        tolerance_pp: allowed ``|measured - claimed|`` in percentage points. Exception: a quantized artifact
            may hold *more* zeros than claimed (weights rounded to the zero point), which passes with a note.

    Returns:
        nothing when there is no claim; else one finding (failing closed when the measurement is missing).
    """
    from .checks import CHECKS, Context, NotApplicable, NotComputed
    from .decision import interval_status
    from .policy_file import Statistics

    try:
        (m,) = CHECKS["sparsity.claim"].extract({}, entry, Context(stats=Statistics()))
    except NotApplicable:
        return []
    except NotComputed:
        return [Finding("sparsity.claim", entry["name"], "fail", "claimed sparsity could not be measured in the artifact: failing closed",
                        {"claimed": (entry.get("compression") or {}).get("claimed_sparsity"), "measured": None})]
    v = m.values
    status = interval_status(m.estimate, None, None, tolerance_pp / 100, "at_most")
    msg = (f"pruned-linear sparsity claimed {v['claimed']:.1%}, measured {v['measured']:.1%} ({v['measured_basis']}; "
           f"{v['difference_pp']:+.1f} pp, tolerance {tolerance_pp:.1f} pp)")
    if v["quantized"] and v["difference_pp"] > tolerance_pp:
        msg += ": quantization rounded further weights to exactly 0"
    elif status == "fail":
        msg += f": the artifact does not hold the claimed sparsity ({v['n_linears_off_claim']} linear(s) off the claim)"
    return [Finding("sparsity.claim", entry["name"], status, msg, {**v, "tolerance_pp": tolerance_pp})]
