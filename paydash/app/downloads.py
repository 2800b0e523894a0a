"""The CSV download of a whole table, shared by the pages (capped, deferred, audited)."""

from __future__ import annotations

from datetime import date

from paydash import csv_safe
from paydash.app import admin_data, data
from paydash.app import format as fmt


def table_download(column, settings, source, username: str, label: str, total: int, what: str, table: str,  # noqa: ANN001
                   *args, key: str, file: str) -> None:  # noqa: ANN002
    """A download of the whole result of `table` (data.table_csv), unless it is more than one
    download holds; the export is written to the audit log when the file is built."""
    if total > settings.export_max_rows:
        column.button(label, key=f"{key}_disabled", disabled=True, icon=":material/download:")
        column.caption(f"{fmt.count(total)} {what} are more than one download holds "
                       f"({fmt.count(settings.export_max_rows)}); narrow the {'search' if table == 'customers' else 'filters'}.")
        return
    recorder = admin_data.export_recorder(settings, username, f"{table.replace('_', ' ')} CSV, {total} rows")
    column.download_button(label, data=data.table_csv(source, table, *args, on_done=recorder),
                           file_name=f"{file}-{date.today():%Y%m%d}.csv", mime="text/csv", key=key, on_click="ignore",
                           icon=":material/download:")


def frame_download(column, frame, label: str, file: str, key: str) -> None:  # noqa: ANN001
    """A download of a small table built in Python (an aggregate the page already holds whole),
    every cell formula-safe. `frame` is a DataFrame or a list of dicts."""
    rows = frame.to_dict("records") if hasattr(frame, "to_dict") else list(frame)
    header = list(frame.columns) if hasattr(frame, "columns") else list(rows[0]) if rows else []

    def build() -> bytes:
        return b"".join(csv_safe.csv_chunks(header, ([row.get(h) for h in header] for row in rows)))

    column.download_button(label, data=admin_data.deferred_csv(build, file), file_name=f"{file}-{date.today():%Y%m%d}.csv",
                           mime="text/csv", key=key, on_click="ignore", icon=":material/download:",
                           disabled=not rows)
