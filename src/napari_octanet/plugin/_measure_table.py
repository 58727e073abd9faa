"""The Measure dock's table: the measures as rows and the regions as columns.

A dock is about 330 px wide at 1280 x 800, room for three or four narrow columns. With a column per
measure (the CSV's layout) it showed ``file``, ``region`` and ``units`` and hid every measure off to
the right; with a column per region, each measure's name heads its row and the whole scan's value
is the first column, the other regions a scroll to the right. The table is as tall as its rows: the
dock scrolls instead. The CSV keeps one row per region (see the core's ``write_csv``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from magicgui.widgets import Table
from qtpy.QtWidgets import QStyledItemDelegate

#: Columns of a CSV row that name the region rather than measure it: they make the table's column titles.
KEY_COLUMNS = ("file", "slice", "region")
#: Significant digits shown; the CSV keeps every digit.
SHOWN_DIGITS = 4


def measures_table() -> Table:
    """An empty table that shows its values as :func:`shown` writes them (magicgui's own display turns 0.05
    into '5.000e-02' and widens every column with four decimals)."""
    table = Table(name="measures")
    table.native.setItemDelegate(QStyledItemDelegate(table.native))
    return table


def fill(table: Table, rows: Sequence[Mapping[str, object]]) -> None:
    """Show ``rows`` transposed, each column as narrow as its values, every row in view."""
    table.value = transposed(rows)
    grid = table.native
    grid.resizeColumnsToContents()
    grid.setMinimumHeight(
        grid.verticalHeader().length()
        + grid.horizontalHeader().height()
        + grid.horizontalScrollBar().sizeHint().height()
        + 2 * grid.frameWidth()
    )


def transposed(rows: Sequence[Mapping[str, object]]) -> dict[str, list]:
    """magicgui's table value for ``rows`` (one per region, and slice): a row per measure, a column per region.

    Measures missing from a region (the FAZ's, outside the whole scan) are left blank.
    """
    names = list(dict.fromkeys(name for row in rows for name in row if name not in KEY_COLUMNS))
    return {
        "data": [[shown(row.get(name)) for row in rows] for name in names],
        "index": names,
        "columns": [column_title(row) for row in rows],
    }


def column_title(row: Mapping[str, object]) -> str:
    """The region, after its slice for a stack: 'whole', or '0 whole'."""
    region = str(row.get("region", ""))
    return f"{row['slice']} {region}" if "slice" in row else region


def shown(value: object) -> object:
    """A float with :data:`SHOWN_DIGITS` significant digits, nothing for a missing value, anything else as it is."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.{SHOWN_DIGITS}g}"
    return value
