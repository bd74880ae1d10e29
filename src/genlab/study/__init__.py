"""Hyper-parameter studies: a grid of params overrides run as queued DVC experiments
(`genlab study run NAME`), compared on one page (`genlab study report NAME`).

Definitions: :mod:`genlab.study.spec`; experiments: :mod:`genlab.study.experiments`;
the page: :mod:`genlab.study.report`; the command: :mod:`genlab.cli.study`.
"""
