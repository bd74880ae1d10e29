"""The suite shows DeprecationWarning and FutureWarning: pyproject.toml may filter a known
third-party message, never a whole category (issue 29: a blanket filter hid genlab's own)."""

from __future__ import annotations

import tomllib

from conftest import ROOT


def test_no_warning_category_is_filtered_wholesale():
    filters = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["filterwarnings"]
    for entry in filters:
        action, message, *rest = entry.split(":") + [""]
        assert action != "ignore" or message.strip(), f"pyproject.toml filters a whole category: {entry!r}"


def test_the_suite_records_a_deprecation_warning(pytestconfig):
    """The active filters let a DeprecationWarning that names no known message through."""
    import warnings

    with warnings.catch_warnings(record=True) as seen:
        warnings.resetwarnings()
        for entry in reversed(pytestconfig.getini("filterwarnings")):
            from _pytest.warnings import parse_warning_filter
            warnings.filterwarnings(*parse_warning_filter(entry, escape=False))
        warnings.warn("genlab.something is deprecated", DeprecationWarning)
    assert [str(w.message) for w in seen] == ["genlab.something is deprecated"]
