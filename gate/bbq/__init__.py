"""BBQ (Parrish et al. 2022, ACL Findings): data, the reduced suite, bias metrics and paired statistics.

Naming: ``s_amb``/``s_dis`` are BBQ's bias scores in ambiguous/disambiguated contexts, ``srs`` the
Stereotype Reliance Score of the study (Rath & Maliakkal 2026), ``target`` the bias target option and
``unknown`` the UNKNOWN option of an item; a *template instance* is the 4 items sharing one context pair.

- :mod:`~gate.bbq.data`: loading and validating ``<Category>.jsonl`` files, bias targets.
- :mod:`~gate.bbq.suite`: the stratified reduced suite and its manifest.
- :mod:`~gate.bbq.metrics`: per-variant scores from predictions.
- :mod:`~gate.bbq.paired`: dense-vs-candidate comparisons (McNemar counts, instance bootstrap).
- :mod:`~gate.bbq.predictions`: reading predictions made elsewhere (``prunegate bbq score``): option indices or
  free text.
- :mod:`~gate.bbq.answers`: classifying a free-text answer as an option, unresolved, refusal or unparseable
  (BBQ's string search, nyu-mll/BBQ#6; never a guess).
- :mod:`~gate.bbq.lm_eval`: reading lm-evaluation-harness ``samples_bbq*.jsonl`` logs and recomputing lm-eval's own
  aggregation of them for comparison.
Scoring on an artifact lives in :mod:`gate.runtime.bbq_scoring` (it also runs on a device).
"""
