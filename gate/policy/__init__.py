"""The policy and the decision: what is checked, against which margin, and what the run's verdict is.

- :mod:`~gate.policy.file`: ``gate.toml`` laid over ``default_policy.toml``, validated by ``policy.schema.json``.
- :mod:`~gate.policy.checks`: the check registry (id, metric, unit, direction) and each check's measurement.
- :mod:`~gate.policy.decision`: PASS/FAIL/INCONCLUSIVE from intervals and margins, waivers, verdict, exit code.
"""
