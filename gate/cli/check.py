"""``prunegate check``: from click's keyword arguments to the typed :class:`gate.pipeline.CheckOptions`."""

from __future__ import annotations

from gate.cli.device import device_options_from_cli
from gate.measure.harness import BenchSettings, parse_prompt_lengths
from gate.pipeline import CheckOptions
from gate.report.outputs import parse_formats


def options_from_cli(kw: dict) -> CheckOptions:
    """Build ``CheckOptions`` from the keyword arguments click passes to ``prunegate check``.

    Each option group maps its own keys here, one block per group, so options can be added independently.
    """
    kw = dict(kw)
    bench = BenchSettings(  # latency/memory protocol (gate.measure.harness)
        prompt_lengths=parse_prompt_lengths(kw.pop("prompt_lengths")), decode_context=kw.pop("decode_context"),
        min_runs=kw.pop("bench_min_runs"), min_seconds=kw.pop("bench_min_seconds"),
        processes=kw.pop("bench_processes"), cv_limit=kw.pop("cv_limit"), protocol=kw.pop("bench_protocol"),
        max_processes=kw.pop("bench_max_processes"), budget_s=kw.pop("bench_budget"))
    allow_fallback = kw.pop("allow_fallback", False)  # execution providers (gate.runtime.providers)
    device, device_options = device_options_from_cli(kw)  # remote device (gate.cli.device)
    calibration = {k: kw.pop(k, None) for k in ("calibration_file", "calibration_windows", "calibration_tokens")}  # compression
    gate_policy = {k: kw.pop(k, None) for k in ("policy", "fail_on")}  # policy file and decision (gate.policy.file)
    report_formats = parse_formats(kw.pop("formats", None))  # projections of report.json (gate.report.outputs)
    ppl = {k: kw.pop(k) for k in ("perplexity", "ppl_file", "ppl_window", "ppl_stride", "ppl_max_tokens") if k in kw}  # gate.measure.perplexity
    return CheckOptions(
        allow_fallback=allow_fallback, device=device, device_options=device_options, **calibration, **gate_policy, report_formats=report_formats, **ppl,
        model=kw.pop("model"), candidates=tuple(kw.pop("candidates")), bbq_dir=kw.pop("bbq_dir"),
        suite_size=kw.pop("suite_size"), seed=kw.pop("seed"), profile=kw.pop("profile"), out_dir=kw.pop("out_dir"),
        work_dir=kw.pop("work_dir"), threads=kw.pop("threads"), suite_file=kw.pop("suite_file"),
        scoring_mode=kw.pop("scoring_mode"), length_normalize=kw.pop("length_normalize"),
        permute_options=kw.pop("permute_options"), bench=bench,
    )
