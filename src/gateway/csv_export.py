"""What every CSV the gateway hands out shares (the ledger export, the console's monthly report)."""

from __future__ import annotations

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
# A spreadsheet opens a CSV without a byte order mark in the machine's legacy code page: Vietnamese text would
# come out garbled (Excel on a Windows set to Vietnamese reads Windows-1258). The BOM makes it read UTF-8.
CSV_BOM = "\ufeff"
# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> object:
    """``value`` as a spreadsheet shows it as text: a string that would start a formula gets a leading apostrophe."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value
