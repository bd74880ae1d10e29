"""genlab's own errors and how any error is shown in one line.

:class:`GenlabError` is the base of every error genlab raises on purpose for a person to read
(a bad input file, an unusable data source, a corrupted checkpoint). A stage prints those in
one line (:mod:`genlab.stage`); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class GenlabError(Exception):
    """An expected failure with a message meant for a person: a stage shows it in one line."""


class InputError(GenlabError, ValueError):
    """Data, a file or a setting genlab cannot use (too few images, a prime outside the
    vocabulary, a model file of another kind); a ValueError for callers that catch those."""


class StageError(GenlabError, RuntimeError):
    """A data or runtime problem a stage reports in one line (exit 1): a missing input, an
    output that cannot be written, a requested device that is absent."""


class TrainingDiverged(GenlabError, RuntimeError):
    """Training produced a NaN or Inf; the message names where and what was kept."""


def first_line(exc: BaseException, *, typed: bool = False) -> str:
    """`exc` as one line: the first non-empty line of its message, else its type name.
    ``typed=True`` prefixes the type (``OperationalError: database is locked``), for errors from
    other libraries whose message alone does not say what failed."""
    line = next((s.strip() for s in str(exc).splitlines() if s.strip()), "")
    name = type(exc).__name__
    if typed:
        return f"{name}: {line}" if line else name
    return line or name
