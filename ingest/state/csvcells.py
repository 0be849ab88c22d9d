"""CSV cells safe to open in a spreadsheet (report.csv, filtered.csv).

OWASP, "CSV Injection": a cell that begins with ``= + - @``, a tab or a carriage return
may be run as a formula by a spreadsheet. Such a cell gets a leading ``'``, so it is shown
as text. To get the raw value back, strip one leading ``'`` that comes before one of those
characters. Quotes and commas inside cells are the csv module's quoting.
"""

from __future__ import annotations

import tempfile
from typing import IO

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def cell(text: str) -> str:
    """``text``, with a leading ``'`` when a spreadsheet would read it as a formula."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_temp() -> IO[str]:
    """A temporary CSV file. backslashreplace: a key from a file name that is not UTF-8
    shows its lone surrogates as \\udcXX, so the CSV stays valid UTF-8."""
    return tempfile.TemporaryFile("w+", encoding="utf-8", errors="backslashreplace", newline="")
