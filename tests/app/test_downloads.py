"""The CSV download of the small tables a page holds whole (Overview, Operations, a payment's retries)."""

from __future__ import annotations

import csv
import io

import pandas as pd

from paydash.app import downloads


class Column:
    """Where a page would draw the button: keeps what it was given."""

    def download_button(self, label, data, **options):  # noqa: ANN001, ANN003, ANN201
        self.label, self.data, self.options = label, data, options


def test_a_frame_downloads_whole_and_formula_safe() -> None:
    frame = pd.DataFrame({"Reason": ["do_not_honor", "=HYPERLINK(\"http://x\")", "@SUM(A1)"], "Failures": [3, 2, None]})
    column = Column()
    downloads.frame_download(column, frame, "Download CSV", "top-failure-reasons", "k")
    rows = list(csv.reader(io.StringIO(column.data().decode())))
    assert rows == [["Reason", "Failures"], ["do_not_honor", "3.0"], ["'=HYPERLINK(\"http://x\")", "2.0"], ["'@SUM(A1)", ""]]
    assert column.options["file_name"].startswith("top-failure-reasons-") and not column.options["disabled"]


def test_a_list_of_dicts_downloads_and_an_empty_one_is_disabled() -> None:
    column = Column()
    downloads.frame_download(column, [{"rule": "checkout", "state": "firing"}], "Download CSV", "alert-rules", "k")
    assert column.data().decode() == "rule,state\ncheckout,firing\n"
    empty = Column()
    downloads.frame_download(empty, [], "Download CSV", "alert-history", "k2")
    assert empty.options["disabled"]
