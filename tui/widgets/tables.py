"""Refreshing a DataTable without losing the operator's place."""

from __future__ import annotations

from collections.abc import Sequence

from textual.widgets import DataTable


def sync_rows(table: DataTable[object], rows: Sequence[tuple[str, Sequence[object]]]) -> None:
    """Show `rows` (key, cells). Same keys in the same order: cells update in place (no highlight churn);
    otherwise the table is rebuilt with the cursor kept on the same key where it still exists."""
    keys = [key for key, _ in rows]
    current = [str(row.value) for row in table.rows]
    if keys == current:
        for key, cells in rows:
            for column, cell in zip(table.ordered_columns, cells, strict=False):
                table.update_cell(key, column.key, cell)
        return
    selected = None
    if table.row_count:
        selected = str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)
    table.clear()
    for key, cells in rows:
        table.add_row(*cells, key=key)
    if selected in keys:
        table.move_cursor(row=keys.index(selected), animate=False)


def selected_key(table: DataTable[object]) -> str | None:
    if not table.row_count:
        return None
    return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)
