"""The exchange format as CSV: one row a lesson, for people who live in spreadsheets.

The columns are the exchange format's contract keys, in its order, under a header row;
UTF-8 with a byte-order mark so spreadsheet programs pick the encoding. List fields
(tags, domains, functions, nations, REL TO) are joined with ``;``; remedial actions,
which are records of their own, are one cell holding their JSON array. A cell that a
spreadsheet would run as a formula (starting ``=``, ``+``, ``-``, ``@``, tab or carriage
return, perhaps behind quote marks) is written with one more leading ``'``, which
reading removes again, so export then import gives back exactly what was exported.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from lessons.services.exchange import (
    LIST_KEYS,
    MAX_LINE_BYTES,
    RECORD_KEYS,
    FieldMap,
    LineError,
    lesson_record,
    loads_bounded,
)

if TYPE_CHECKING:  # packets imports the lesson services, which import exchange
    from lessons.services.packets import Packet

COLUMNS = RECORD_KEYS
LIST_SEPARATOR = ";"
BOM = "\ufeff"
# A cell a spreadsheet would run as a formula, possibly behind quote marks already.
_FORMULA = re.compile(r"^'*[=+\-@\t\r]")
MAX_CELL = MAX_LINE_BYTES
# The exchange format has 24 columns; a mapped export may add its own. Far more is no
# spreadsheet of lessons, and each column costs work on every row.
MAX_COLUMNS = 200


def protect_cell(text: str) -> str:
    """Defuse formula injection, reversibly: one more leading ``'``."""
    return "'" + text if _FORMULA.match(text) else text


def _unprotect(text: str) -> str:
    return text[1:] if text.startswith("'") and _FORMULA.match(text) else text


def _cell(key: str, value: Any) -> str:
    if value is None:
        return ""
    if key == "actions":
        return json.dumps(value, ensure_ascii=False) if value else ""
    if isinstance(value, list):
        return protect_cell(LIST_SEPARATOR.join(value))
    return protect_cell(str(value))


def header_line() -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(COLUMNS)
    return BOM + out.getvalue()


def row_line(record: dict[str, Any]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow([_cell(k, record.get(k)) for k in COLUMNS])
    return out.getvalue()


def export_rows(lessons: Iterable) -> Iterator[str]:
    """The header, then one CSV row per lesson (the caller has applied the policy)."""
    yield header_line()
    for lesson in lessons:
        yield row_line(lesson_record(lesson))


def _typed(record: dict[str, Any], line: int) -> tuple[dict[str, Any], list[LineError]]:
    """Cells are text: turn list, date and action cells into the exchange format's types."""
    errors: list[LineError] = []
    out: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, str):
            value = _unprotect(value)
        if key in LIST_KEYS and isinstance(value, str):
            value = [part.strip() for part in value.split(LIST_SEPARATOR) if part.strip()]
        elif key == "actions" and isinstance(value, str):
            if not value.strip():
                value = None
            else:
                try:
                    value = loads_bounded(value)
                except json.JSONDecodeError as exc:
                    errors.append(LineError(line, "actions", f"not a JSON array: {exc.msg}"))
                    continue
                except ValueError as exc:
                    errors.append(LineError(line, "actions", str(exc)))
                    continue
        elif key in ("observed_on", "external_id", "originator_nation", "status") \
                and value == "":
            value = None
        out[key] = value
    return out, errors


def read_rows(text: str, field_map: FieldMap | None
              ) -> Iterator[tuple[int, dict[str, Any] | None, LineError | None]]:
    """Yield (line number, record, error) for each CSV row, as ``exchange.read_lines``
    does for JSON Lines; the line number is where the row starts in the file."""
    text = text.removeprefix(BOM)
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
        header = reader.fieldnames
    except csv.Error as exc:
        yield 1, None, LineError(1, "(header)", f"not readable CSV: {exc}")
        return
    if not header:
        yield 1, None, LineError(1, "(header)", "the file is empty; the first row must "
                                                 "name the columns")
        return
    if len(header) > MAX_COLUMNS:
        yield 1, None, LineError(1, "(header)", f"{len(header):,} columns; at most "
                                                 f"{MAX_COLUMNS} are allowed")
        return
    duplicates = sorted(name for name, count in Counter(header).items() if count > 1)
    if duplicates:
        yield 1, None, LineError(1, "(header)", f"repeated columns: {', '.join(duplicates)}")
        return
    start = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield start, None, LineError(start, "(row)", f"not readable CSV: {exc}")
            return
        line, start = start, reader.line_num + 1
        if None in row:
            yield line, None, LineError(line, "(row)", "more cells than the header has "
                                                       "columns")
            continue
        if not any((value or "").strip() for value in row.values()):
            continue
        if any(len(value or "") > MAX_CELL for value in row.values()):
            yield line, None, LineError(line, "(row)", f"a cell is longer than {MAX_CELL:,} "
                                                       "characters")
            continue
        record = {key: value for key, value in row.items() if value is not None}
        mapped = field_map.apply(record) if field_map else record
        typed, errors = _typed(mapped, line)
        if errors:
            yield line, None, errors[0]
            continue
        yield line, typed, None


PACKET_COLUMNS = ("objective", "id", "external_id", "title", "marking", "kind", "status",
                  "originator_nation", "observation", "discussion", "conclusion",
                  "recommendation", "friction", "workaround", "limits", "permanence",
                  "tags", "purpose", "link_status", "note")
# What a workaround adds to a lesson; empty cells for the other kinds.
WORKAROUND_COLUMNS = ("friction", "workaround", "limits", "permanence")


def packet_csv(result: Packet) -> str:
    """A read-ahead packet as CSV, its marking on the first and last rows; one row a
    lesson, the objective as its text, a workaround's friction, what was done, limits
    and permanence in their own columns."""
    from lessons.services.packets import packet_item

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["# " + result.marking])
    writer.writerow(PACKET_COLUMNS)
    for link in result.lessons:
        item = packet_item(link)
        item["objective"] = item["objective"]["text"] if item["objective"] else ""
        if link.lesson.kind == "workaround":
            item.update({key: getattr(link.lesson, key) for key in WORKAROUND_COLUMNS})
        writer.writerow([_cell(column, item.get(column)) for column in PACKET_COLUMNS])
    writer.writerow(["# " + result.marking])
    return BOM + out.getvalue()
