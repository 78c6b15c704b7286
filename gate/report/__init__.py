"""The report: ``report.json`` (schema ``report.schema.json``) and its read-only projections.

- :mod:`~gate.report.build`: schema version, the atomic JSON writer, console summary lines.
- :mod:`~gate.report.view`: the read-only view every projection uses (check rows, formatting).
- :mod:`~gate.report.outputs`: the format registry and writing all projections with digests.
- :mod:`~gate.report.markdown`, :mod:`~gate.report.html`, :mod:`~gate.report.junit`,
  :mod:`~gate.report.annotations`, :mod:`~gate.report.intoto`: one projection each.
- :mod:`~gate.report.schema`: validation; :mod:`~gate.report.verify`: ``prunegate verify``.
"""
