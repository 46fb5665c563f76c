"""Cell values both ways: inventory value -> what a cell shows, cell -> inventory value.

A parser raises CellError naming the rule a cell breaks; the importer adds the sheet, row and
column. Type and format problems use the inventory loader's rule ID, SCHEMA.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date, datetime
from ipaddress import AddressValueError, IPv4Address

from hazmon.tables import labels

CellValue = str | int | float | bool | date | datetime | None
Parser = Callable[[CellValue], object]
Formatter = Callable[[object], CellValue]

LIST_SEPARATORS = re.compile(r"[、,，;；\n]+")
JOIN = "、"


class CellError(ValueError):
    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message


def blank(value: CellValue) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


# ---------------------------------------------------------------- inventory value -> cell


def plain(value: object) -> CellValue:
    return value  # type: ignore[return-value]


def as_date(value: object) -> CellValue:
    return date.fromisoformat(value) if isinstance(value, str) else None


def as_bool(value: object) -> CellValue:
    return None if value is None else (labels.YES if value else labels.NO)


def as_label(table: Mapping[str, str]) -> Formatter:
    return lambda value: labels.label(table, value) if isinstance(value, str) else None


def as_labels(table: Mapping[str, str]) -> Formatter:
    return lambda value: JOIN.join(labels.label(table, v) or "" for v in value or []) or None


def as_joined(value: object) -> CellValue:
    return JOIN.join(str(v) for v in value or []) or None  # type: ignore[union-attr]


# ---------------------------------------------------------------- cell -> inventory value


def text(value: CellValue) -> str | None:
    if blank(value):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value).strip()


def digits20(value: CellValue) -> str | None:
    """A GB/T 28181 ID. Excel keeps only 15 significant digits of a number: insist on text."""
    if isinstance(value, float):
        raise CellError("GB28181", "a 20-digit ID typed as a number loses its last digits in Excel: "
                                   "enter it as text (format the cell as 文本, or start with ')")
    return text(value)


def number(unit: str) -> Parser:
    def parse(value: CellValue) -> int | float | None:
        if blank(value):
            return None
        if isinstance(value, bool | datetime | date):
            raise CellError("SCHEMA", f"{value!r} is not a number ({unit})")
        if isinstance(value, int | float):
            return value
        try:
            num = float(str(value).strip())
        except ValueError:
            raise CellError("SCHEMA", f"{str(value).strip()!r} is not a number ({unit})") from None
        return int(num) if num.is_integer() and "." not in str(value) else num

    return parse


def integer(what: str) -> Parser:
    def parse(value: CellValue) -> int | None:
        num = number(what)(value)
        if num is None:
            return None
        if isinstance(num, float) and not num.is_integer():
            raise CellError("SCHEMA", f"{num:g} is not a whole number ({what})")
        return int(num)

    return parse


def day(value: CellValue) -> date | None:
    if blank(value):
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise CellError("SCHEMA", f"{value!r} is not a date (YYYY-MM-DD)") from None


def yes_no(value: CellValue) -> bool | None:
    if blank(value):
        return None
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in (labels.YES, "true", "yes", "y", "1", "支持"):
        return True
    if word in (labels.NO, "false", "no", "n", "0", "不支持"):
        return False
    raise CellError("SCHEMA", f"{value!r} is neither {labels.YES} nor {labels.NO}")


def ipv4(value: CellValue) -> str | None:
    addr = text(value)
    if addr is None:
        return None
    try:
        return str(IPv4Address(addr))
    except AddressValueError:
        raise CellError("SCHEMA", f"{addr!r} is not an IPv4 address") from None


def choice(table: Mapping[str, str], what: str) -> Parser:
    def parse(value: CellValue) -> str | None:
        word = text(value)
        if word is None:
            return None
        code = labels.code_of(table, word)
        if code is None:
            raise CellError("SCHEMA", f"{word!r} is not a known {what}; use one of {JOIN.join(table.values())}")
        return code

    return parse


def choices(table: Mapping[str, str], what: str) -> Parser:
    one = choice(table, what)

    def parse(value: CellValue) -> list[str]:
        return [one(word) for word in split(value)]  # type: ignore[misc]

    return parse


def split(value: CellValue) -> list[str]:
    words = text(value)
    return [w.strip() for w in LIST_SEPARATORS.split(words) if w.strip()] if words else []


def open_text(table: Mapping[str, str]) -> Parser:
    """Free text shown through a label table (vendors): known labels go back to their code."""
    return lambda value: None if text(value) is None else labels.code_of(table, text(value) or "") or text(value)
