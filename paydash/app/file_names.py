"""Names of downloaded files that say what they hold (pure: no Streamlit, no database).

`csv_file_name("payments", params, today)` names an export after the explorer's URL
parameters (explorer.state_to_params / filters.filters_to_params), whatever filters they
carry, so a new filter names itself:

    {"status": "failed", "from": "2026-11-01", "to": "2026-11-30", "card_brand": "visa"}
        -> payments-failed-visa-2026-11-01-to-2026-11-30.csv
    {"failure_code": "do_not_honor", "min_amount": "10.5"}
        -> payments-failure-code-do_not_honor-min-amount-10.5-until-2026-12-04.csv

Values whose words say what they are (a status, funnel, card brand) stand alone; any other
filter is written `key-value`. The dates come last: the range, or `until-<today>` without
one. Only ASCII letters, digits, `.`, `_` and `-` appear, never at the start a dot or a dash,
and the name stays short enough for every file system.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from typing import Any, Mapping

# filters whose values name themselves ("failed", "visa", "main_funnel")
VALUE_ONLY = frozenset({"status", "funnel", "card_brand"})
# where the view is, not what the file holds
NOT_CONTENT = frozenset({"page", "charge", "sort", "asc"})
DATE_KEYS = ("from", "to")
MAX_PART = 40  # characters of one value (a long search text is cut)
MAX_STEM = 150  # characters before ".csv"

_UNSAFE = re.compile(r"[^A-Za-z0-9._]+")


def _slug(value: Any) -> str:
    """`value` in safe characters: accents dropped, any other run of characters one dash."""
    if isinstance(value, (list, tuple, set, frozenset)):
        value = "-".join(str(v) for v in value)
    ascii_text = unicodedata.normalize("NFKD", str(value)).encode("ascii", "ignore").decode()
    return _UNSAFE.sub("-", ascii_text).strip("-._")[:MAX_PART].strip("-._")


def csv_file_name(what: str, params: Mapping[str, Any], today: date) -> str:
    """`<what>-<filters>-<dates>.csv` for a download of `what` under these URL parameters."""
    parts = [_slug(what) or "export"]
    for key, value in params.items():
        if key in NOT_CONTENT or key in DATE_KEYS or value in (None, ""):
            continue
        text = _slug(value)
        if key in VALUE_ONLY and text:
            parts.append(text)
        else:
            parts.append("-".join(p for p in (_slug(key).replace("_", "-"), text) if p))
    start, end = (_slug(params.get(k) or "") for k in DATE_KEYS)
    if start or end:
        dates = f"{start or 'start'}-to-{end or today.isoformat()}"
    else:
        dates = f"until-{today.isoformat()}"
    stem = "-".join(p for p in parts if p)[: MAX_STEM - len(dates) - 1].rstrip("-._")
    return f"{stem}-{dates}.csv"
