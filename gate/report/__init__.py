"""The report: ``report.json`` (schema ``report.schema.json``) and its read-only projections.

- :mod:`~gate.report.build`: schema version, the atomic JSON writer, console summary lines.
- :mod:`~gate.report.view`: the read-only view every projection uses (check rows, formatting).
- :mod:`~gate.report.outputs`: the format registry and writing all projections with digests.
- :mod:`~gate.report.markdown`, :mod:`~gate.report.html`, :mod:`~gate.report.junit`,
  :mod:`~gate.report.annotations`, :mod:`~gate.report.intoto`: one projection each.
- :mod:`~gate.report.model_card`: the Hugging Face model card section (``model-index`` YAML front matter + Markdown).
- :mod:`~gate.report.diff`: ``prunegate report diff OLD NEW``: per-check regressions and the paired verdict.
- :mod:`~gate.report.out_dir`: claiming ``--out`` for one run and clearing the previous run's files.
- :mod:`~gate.report.schema`: validation; :mod:`~gate.report.consistency`: verdict, exit code and checks agree.
- :mod:`~gate.report.verify`: ``prunegate verify``; :mod:`~gate.report.signing`: Ed25519 signatures (DSSE).
"""
