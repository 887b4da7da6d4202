"""Sphinx extension: read ``|x|`` in docstrings as text (absolute value, norm), not as a substitution.

The package's numpy-style docstrings write plain-text maths such as ``|S - M|`` or ``|H(z)|``;
reStructuredText would take each as a reference to an undefined substitution and fail the build.
Before autodoc parses a docstring, bars outside inline literals and roles are escaped.
"""
import re

_CODE = re.compile(r"(:[\w:+-]+:`[^`]*`|``[^`]*``|`[^`]*`)")


def _escape_bars(line: str) -> str:
    parts = _CODE.split(line)
    # Even indices are plain text, odd ones the literals and roles matched by _CODE.
    return "".join(p if i % 2 else re.sub(r"(?<!\\)\|", r"\\|", p) for i, p in enumerate(parts))


def _process(app, what, name, obj, options, lines):
    lines[:] = [_escape_bars(line) for line in lines]


def setup(app):
    app.connect("autodoc-process-docstring", _process)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
