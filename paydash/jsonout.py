"""The one JSON serialiser of paydash's output: `paydash ... --json` and the System page's
report (JSON download) both write through it, so a value looks the same in either.

- Decimal (money) -> a JSON number; NaN and infinities -> null (JSON has neither);
- datetime -> ISO 8601 to the second; naive ones are UTC (every stored time is), marked `Z`;
- date -> YYYY-MM-DD; dataclasses -> objects; tuples and sets -> arrays; keys -> strings;
- anything else -> its text, rather than a failure halfway through a report.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, is_dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any


def jsonable(value: Any) -> Any:
    """`value` as plain JSON types (dict, list, str, int, float, bool, None)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return float(value) if value.is_finite() else None
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds") + ("Z" if value.tzinfo is None else "")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return jsonable(value.value)
    if is_dataclass(value) and not isinstance(value, type):
        return jsonable(asdict(value))
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    return str(value)


def dumps(value: Any) -> str:
    """`value` as indented JSON text (no trailing newline)."""
    return json.dumps(jsonable(value), indent=2, allow_nan=False)
