"""Unit tests of the cell parsers: what a city may type, and what it may not."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from hazmon.tables import cells, labels


def test_numbers() -> None:
    parse = cells.number("Mbps")
    assert parse(20) == 20 and parse(18.5) == 18.5 and parse(" 25 ") == 25 and parse("25.5") == 25.5
    assert parse(None) is None and parse("  ") is None
    for bad in ("abc", "20Mbps", True, datetime(2026, 1, 1)):
        with pytest.raises(cells.CellError) as exc:
            parse(bad)
        assert exc.value.rule == "SCHEMA" and "Mbps" in exc.value.message


def test_integers_refuse_fractions() -> None:
    parse = cells.integer("U")
    assert parse(16.0) == 16 and parse("3") == 3
    with pytest.raises(cells.CellError):
        parse(16.5)


def test_dates_and_booleans() -> None:
    assert cells.day(datetime(2026, 11, 1, 0, 0)) == date(2026, 11, 1)
    assert cells.day("2026-11-01") == date(2026, 11, 1)
    with pytest.raises(cells.CellError):
        cells.day("11/1")
    assert cells.yes_no("是") is True and cells.yes_no("否") is False and cells.yes_no(None) is None
    with pytest.raises(cells.CellError):
        cells.yes_no("maybe")


def test_ids_must_be_text() -> None:
    assert cells.digits20("51010000001186000001") == "51010000001186000001"
    with pytest.raises(cells.CellError) as exc:
        cells.digits20(5.101000000118600e19)
    assert exc.value.rule == "GB28181"


def test_labels_both_ways() -> None:
    parse = cells.choices(labels.PROGRAMME, "programme")
    assert parse("重大危险源、重点监管工艺") == ["major_hazard", "key_process"]
    assert parse("fireworks，尾矿库") == ["fireworks", "tailings_pond"]
    assert parse(None) == []
    with pytest.raises(cells.CellError) as exc:
        parse("重大危险源、化工")
    assert "化工" in exc.value.message
    fmt = cells.as_labels(labels.PROGRAMME)
    assert parse(fmt(["major_hazard", "pipeline"])) == ["major_hazard", "pipeline"]
    assert cells.open_text(labels.VENDOR)("海康威视") == "hikvision"
    assert cells.open_text(labels.VENDOR)("uniview") == "uniview"


def test_addresses() -> None:
    assert cells.ipv4(" 192.168.1.3 ") == "192.168.1.3"
    with pytest.raises(cells.CellError):
        cells.ipv4("192.168.1")
