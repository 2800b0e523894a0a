"""Pages declared in configuration: a TOML file of `[[page]]` tables, validated into `DeclaredPage`s.

paydash ships pages for the Stripe objects it syncs (`shipped_pages.toml` beside this module:
disputes, refunds, checkout sessions, invoices); a team adds its own with PAYDASH_PAGES_FILE,
and a page of the same name there replaces the shipped one. Every mistake is refused in one
line naming the file, the page, the key and the fix (docs/pages.md). Nothing here imports
Streamlit or opens the database: the app, the CLI and `paydash serve` all read pages through it;
`check_columns` takes what the warehouse says a table has (paydash/warehouse/reflect.py).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Mapping

from paydash.errors import ConfigError
from paydash.state.models import ROLES

SHIPPED_PAGES_FILE = Path(__file__).with_name("shipped_pages.toml")

REQUIRED = ("name", "title", "table", "search", "filters", "order_by")
OPTIONAL = ("columns", "key", "stats", "json", "links", "roles", "description")
KEYS = REQUIRED + OPTIONAL
COLUMN_KEYS = ("name", "label", "format")
FORMATS = ("text", "number", "money", "datetime", "date", "epoch", "json")
# the built-in pages' paths, and what `paydash serve` answers before the pages: a declared page cannot take them
BUILT_IN = ("overview", "payments", "operations", "customers", "promotions", "system", "data-explorer")
SERVED_PATHS = ("auth", "healthz", "webhooks", "events", "metrics")
# links may lead to the built-in Payments page: it opens a charge by its id
PAYMENT_LINK = "payments"
# the query string of a declared page: these words, then one parameter per filter column
URL_WORDS = ("q", "page", "key")
# a table may name paydash's configured marts: "{disputes_table}" -> PAYDASH_DISPUTES_TABLE's table
# ("{checkout_sessions_table}", "{invoices_table}": the sync's raw tables, in the charge mart's schema)
TABLE_PLACEHOLDERS = ("payments_table", "refunds_table", "disputes_table", "customers_table",
                      "checkout_sessions_table", "invoices_table")

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
_ORDER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_$]*)(?:\s+(asc|desc))?(?:\s+nulls\s+(first|last))?"
                    r"(?:\s+when\s+([A-Za-z_][A-Za-z0-9_$]*)\s+in\s*\(([^()]*)\))?\s*$", re.I)
ORDER_FORM = "COLUMN [asc|desc] [nulls first|last] [when COLUMN in (VALUE, ...)]"
_TABLE = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_$]*\.)?[A-Za-z_][A-Za-z0-9_$]*$")


@dataclass(frozen=True)
class Order:
    column: str
    descending: bool = False
    nulls: str | None = None  # "first", "last" or None (the database's default)
    # ordered by `column` only on rows whose `when[0]` is one of `when[1]`; the others count as empty
    # (e.g. the evidence due date of the disputes still awaiting a response)
    when: tuple[str, tuple[str, ...]] | None = None

    def __str__(self) -> str:
        text = f"{self.column} {'desc' if self.descending else 'asc'}"
        text += f" nulls {self.nulls}" if self.nulls else ""
        return text + (f" when {self.when[0]} in ({', '.join(self.when[1])})" if self.when else "")


@dataclass(frozen=True)
class Shown:
    """A column the page's table shows: its name, label and format."""

    name: str
    label: str
    format: str = "text"


@dataclass(frozen=True)
class DeclaredPage:
    name: str
    title: str
    table: str
    search: tuple[str, ...]
    filters: tuple[str, ...]
    order_by: tuple[Order, ...]
    columns: tuple[Shown, ...] = ()  # empty: every column of the table, as text
    key: str | None = None
    stats: tuple[str, ...] = ()
    json: str | None = None
    links: tuple[tuple[str, str], ...] = ()  # (column, page name or "payments")
    roles: tuple[str, ...] = ROLES
    description: str = ""
    source: str = ""  # the file it was declared in
    shipped: bool = False  # one of paydash's own pages (shown only when its table exists)

    @property
    def link_map(self) -> dict[str, str]:
        return dict(self.links)

    def format_of(self, column: str) -> str:
        for shown in self.columns:
            if shown.name == column:
                return shown.format
        return "json" if column == self.json else "text"

    def label_of(self, column: str) -> str:
        for shown in self.columns:
            if shown.name == column:
                return shown.label
        return column

    def visible_to(self, role: str) -> bool:
        """Admins see every page; anyone else only the pages whose roles name theirs."""
        return role == "admin" or role in self.roles

    def referenced_columns(self) -> list[tuple[str, str]]:
        """(key, column) of every column the declaration names, for checking against the table."""
        named = [("search", c) for c in self.search] + [("filters", c) for c in self.filters]
        named += [("order_by", o.column) for o in self.order_by] + [("columns", c.name) for c in self.columns]
        named += [("order_by", o.when[0]) for o in self.order_by if o.when]
        named += [("stats", c) for c in self.stats] + [("links", c) for c, _ in self.links]
        named += [(k, c) for k, c in (("key", self.key), ("json", self.json)) if c]
        return named


def _columns_list(raw: Any, fail: Callable[[str, str], ConfigError], key: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(c, str) for c in raw):
        raise fail(key, f'must be a list of column names, e.g. {key} = ["status"]')
    for column in raw:
        if not _IDENT.match(column):
            raise fail(key, f"{column!r} is not a column name; use letters, digits and underscores")
    if len(set(raw)) != len(raw):
        raise fail(key, "names a column twice; name each once")
    return tuple(raw)


def _order(raw: Any, fail: Callable[[str, str], ConfigError]) -> tuple[Order, ...]:
    fix = 'write e.g. order_by = ["evidence_due_by asc nulls last", "created_at desc"]'
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw or not all(isinstance(o, str) for o in raw):
        raise fail("order_by", f"must be a list of at least one '{ORDER_FORM}'; {fix}")
    orders = []
    for text in raw:
        match = _ORDER.match(text)
        if not match:
            raise fail("order_by", f"{text!r} is not '{ORDER_FORM}'; {fix}")
        column, direction, nulls, when_column, when_values = match.groups()
        when = None
        if when_column:
            values = tuple(v.strip().strip("'\"") for v in when_values.split(","))
            if not all(values):
                raise fail("order_by", f"{text!r} lists an empty value in 'when {when_column} in (...)'; "
                                       "write e.g. when status in (needs_response, warning_needs_response)")
            when = (when_column, values)
        orders.append(Order(column, (direction or "asc").lower() == "desc", nulls.lower() if nulls else None, when))
    return tuple(orders)


def _shown(raw: Any, fail: Callable[[str, str], ConfigError]) -> tuple[Shown, ...]:
    fix = 'write e.g. columns = [{ name = "amount_usd", label = "Amount", format = "money" }, "status"]'
    if not isinstance(raw, list) or not raw:
        raise fail("columns", f"must be a list of columns; {fix}")
    shown = []
    for item in raw:
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict):
            raise fail("columns", f"{item!r} is neither a column name nor a table; {fix}")
        unknown = sorted(set(item) - set(COLUMN_KEYS))
        if unknown:
            raise fail("columns", f"has unknown key(s) {', '.join(unknown)}; a column takes {', '.join(COLUMN_KEYS)}")
        name = item.get("name")
        if not isinstance(name, str) or not _IDENT.match(name):
            raise fail("columns", f"an entry has no valid name ({name!r}); {fix}")
        label = item.get("label", name)
        if not isinstance(label, str) or not label.strip():
            raise fail("columns", f"the label of {name!r} must be text")
        kind = item.get("format", "text")
        if kind not in FORMATS:
            raise fail("columns", f"format {kind!r} of {name!r} is unknown; use one of {', '.join(FORMATS)}")
        shown.append(Shown(name, label.strip(), kind))
    if len({s.name for s in shown}) != len(shown):
        raise fail("columns", "names a column twice; name each once")
    return tuple(shown)


def _page(raw: Any, index: int, where: str, shipped: bool) -> DeclaredPage:
    label = f"{where}: page #{index + 1}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{label} is not a table; write each page as a [[page]] table")
    if isinstance(raw.get("name"), str):
        label = f"{where}: page {raw['name']!r}"

    def fail(key: str, problem: str) -> ConfigError:
        return ConfigError(f"{label}: key {key!r} {problem}")

    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise ConfigError(f"{label}: unknown key {unknown[0]!r}; remove it (a page takes {', '.join(KEYS)})")
    missing = [k for k in REQUIRED if k not in raw]
    if missing:
        raise ConfigError(f"{label}: missing required key {missing[0]!r}; add it (docs/pages.md: every page declares "
                          f"{', '.join(REQUIRED)})")
    name = raw["name"]
    if not isinstance(name, str) or not _NAME.match(name):
        raise fail("name", f"{name!r} is not a page name (its URL path); use lower-case letters, digits, _ and -")
    if name in BUILT_IN or name in SERVED_PATHS:
        what = "a built-in page of paydash" if name in BUILT_IN else "a path `paydash serve` answers itself"
        raise fail("name", f"{name!r} is {what}; choose another name")
    title = raw["title"]
    if not isinstance(title, str) or not title.strip():
        raise fail("title", "must be text, e.g. title = \"Appointments\"")
    table = raw["table"]
    placeholder = isinstance(table, str) and table.startswith("{") and table.endswith("}")
    if not isinstance(table, str) or (placeholder and table[1:-1] not in TABLE_PLACEHOLDERS) or (
            not placeholder and not _TABLE.match(table.strip())):
        raise fail("table", f"{table!r} is not a table name; write table or schema.table (or one of "
                            f"{', '.join('{' + p + '}' for p in TABLE_PLACEHOLDERS)})")
    search = _columns_list(raw["search"], fail, "search")
    filters = _columns_list(raw["filters"], fail, "filters")
    for column in filters:
        if column in URL_WORDS:
            raise fail("filters", f"{column!r} is a word of the page's URL ({', '.join(URL_WORDS)}); filter on a "
                                  "view that renames the column")
    order_by = _order(raw["order_by"], fail)
    columns = _shown(raw["columns"], fail) if "columns" in raw else ()
    singles = {}
    for key in ("key", "json"):
        value = raw.get(key)
        if value is not None and (not isinstance(value, str) or not _IDENT.match(value)):
            raise fail(key, f"{value!r} is not a column name")
        singles[key] = value
    stats = _columns_list(raw["stats"], fail, "stats") if "stats" in raw else ()
    links_raw = raw.get("links", {})
    if not isinstance(links_raw, dict) or not all(isinstance(v, str) for v in links_raw.values()):
        raise fail("links", 'must be a table of column = "page name", e.g. links = { charge_id = "payments" }')
    for column in links_raw:
        if not _IDENT.match(column):
            raise fail("links", f"{column!r} is not a column name")
    roles_raw = raw.get("roles", list(ROLES))
    if isinstance(roles_raw, str):
        roles_raw = [roles_raw]
    if not isinstance(roles_raw, list) or not roles_raw:
        raise fail("roles", f"must be a list of roles, e.g. roles = [\"admin\"]; roles are {', '.join(ROLES)}")
    for role in roles_raw:
        if role not in ROLES:
            raise fail("roles", f"{role!r} is not a role; use {' or '.join(ROLES)}")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise fail("description", "must be text")
    return DeclaredPage(name, title.strip(), table.strip(), search, filters, order_by, columns, singles["key"], stats,
                        singles["json"], tuple(links_raw.items()), tuple(dict.fromkeys(roles_raw)),
                        description.strip(), where, shipped)


def parse_pages(text: str, where: str = "pages", shipped: bool = False) -> list[DeclaredPage]:
    """Pages from TOML text; ConfigError naming the file, the page, the key and the fix."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where} is not valid TOML ({exc}); fix the file") from None
    unknown = sorted(set(data) - {"page"})
    if unknown:
        raise ConfigError(f"{where}: unknown top-level key {unknown[0]!r}; write each page as a [[page]] table")
    raw_pages = data.get("page", [])
    if not isinstance(raw_pages, list):
        raise ConfigError(f"{where}: `page` must be a list of [[page]] tables")
    pages = [_page(raw, i, where, shipped) for i, raw in enumerate(raw_pages)]
    seen: set[str] = set()
    for page in pages:
        if page.name in seen:
            raise ConfigError(f"{where}: page {page.name!r}: key 'name' is used by two pages; give each page its own "
                              "name (it is the page's URL path)")
        seen.add(page.name)
    return pages


def _check_links(pages: Mapping[str, DeclaredPage]) -> None:
    for page in pages.values():
        for column, target in page.links:
            if target == PAYMENT_LINK:
                continue
            if target not in pages:
                raise ConfigError(f"{page.source}: page {page.name!r}: key 'links' leads {column} to the unknown page "
                                  f"{target!r}; name a declared page ({', '.join(sorted(pages)) or 'none'}) or "
                                  f"{PAYMENT_LINK!r}")
            if pages[target].key is None:
                raise ConfigError(f"{page.source}: page {page.name!r}: key 'links' leads {column} to page {target!r}, "
                                  f"which has no key; give page {target!r} a key (its id column)")


def resolve_table(page: DeclaredPage, tables: Mapping[str, str]) -> DeclaredPage:
    """The page with a placeholder table ("{disputes_table}") replaced by the configured name."""
    if page.table.startswith("{"):
        return replace(page, table=tables[page.table[1:-1]])
    return page


def configured_tables(settings) -> dict[str, str]:  # noqa: ANN001
    """The placeholders' tables: the marts as PAYDASH_*_TABLE configure them."""
    from paydash.warehouse.schema import display_name, marts_for

    marts = marts_for(settings)
    schema = f"{marts.payments.schema}." if marts.payments.schema else ""
    return {"payments_table": display_name(marts.payments), "refunds_table": display_name(marts.refunds),
            "disputes_table": display_name(marts.disputes), "customers_table": display_name(marts.customers),
            "checkout_sessions_table": schema + "stripe_checkout_sessions", "invoices_table": schema + "stripe_invoices"}


def load_pages(settings) -> dict[str, DeclaredPage]:  # noqa: ANN001
    """The declared pages by name: the shipped ones, then PAYDASH_PAGES_FILE's (same name: the file's wins).
    ConfigError (one line: the file, the page, the key, the fix) on any mistake."""
    pages = {p.name: p for p in parse_pages(SHIPPED_PAGES_FILE.read_text(), str(SHIPPED_PAGES_FILE), shipped=True)}
    configured = (getattr(settings, "pages_file", "") or "").strip()
    if configured:
        path = Path(configured).expanduser()
        if not path.is_file():
            raise ConfigError(f"pages file {path} not found; fix PAYDASH_PAGES_FILE, or unset it for paydash's own pages")
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"pages file {path} cannot be read ({exc}); fix PAYDASH_PAGES_FILE") from None
        pages.update({p.name: p for p in parse_pages(text, str(path))})
    _check_links(pages)
    tables = configured_tables(settings)
    return {name: resolve_table(page, tables) for name, page in pages.items()}


def check_columns(page: DeclaredPage, columns: Mapping[str, str] | None) -> None:
    """Refuse a page naming a column its table does not have (`columns`: the table's columns;
    None when the table is missing, which only that page reports, when it is opened)."""
    if columns is None:
        return
    for key, column in page.referenced_columns():
        if column not in columns:
            if page.shipped:
                raise ConfigError(f"paydash's {page.title} page reads column {column!r}, which table {page.table} does "
                                  f"not have; add it, or declare your own page {page.name!r} in PAYDASH_PAGES_FILE "
                                  "(docs/pages.md)")
            raise ConfigError(f"{page.source}: page {page.name!r}: key {key!r} names column {column!r}, which table "
                              f"{page.table} does not have; use one of {', '.join(columns)}")


def check_all(pages: Mapping[str, DeclaredPage], columns_of: Callable[[str], Mapping[str, str] | None]) -> None:
    """check_columns for every page the team declared; `columns_of(table)` is what the warehouse says
    the table has (paydash/warehouse/reflect.py `read_columns`: None when it is missing). paydash's own
    pages never stop a start: a mart of another shape (dbt's) is said on that page when it is opened."""
    for page in pages.values():
        if not page.shipped:
            check_columns(page, columns_of(page.table))


def missing_table(page: DeclaredPage, where: str) -> str:
    """The message of a page whose table is not there (shown on that page only)."""
    if page.shipped:
        return (f"table {page.table} not found in {where}: paydash fills it with `paydash sync`; "
                "its page appears once it exists")
    return (f"table {page.table} of page {page.name!r} not found in {where}; create it, grant the warehouse user "
            f"SELECT on it, or fix key 'table' of page {page.name!r} in {page.source}")


@dataclass(frozen=True)
class PageQuery:
    """What a declared page is asked for: a search, filters and a page number (hashable, for caches).

    `filters`: (column, value) pairs; a date-range column's value is (from, to), dates or None."""

    search: str | None = None
    filters: tuple[tuple[str, Any], ...] = ()
    page: int = 1
    key: str | None = None  # the row whose detail is open

    @property
    def filter_map(self) -> dict[str, Any]:
        return dict(self.filters)


MAX_SEARCH = 200


def parse_range(text: str, column: str) -> tuple[Any, Any]:
    """'2026-01-01..2026-01-31' (either end may be left out) -> (date | None, date | None)."""
    from datetime import date

    from paydash.errors import InvalidInput

    start_text, sep, end_text = text.partition("..")
    if not sep:
        start_text = end_text = text
    try:
        start = date.fromisoformat(start_text.strip()) if start_text.strip() else None
        end = date.fromisoformat(end_text.strip()) if end_text.strip() else None
    except ValueError:
        raise InvalidInput(f"{column} {text!r} is not a date range; write FROM..TO as YYYY-MM-DD..YYYY-MM-DD "
                           "(either end may be left out)") from None
    if start and end and end < start:
        raise InvalidInput(f"{column} {text!r} ends before it starts; swap the two dates")
    return start, end


def format_range(value: tuple[Any, Any]) -> str:
    start, end = value
    return f"{start.isoformat() if start else ''}..{end.isoformat() if end else ''}"


def query_from_params(page: DeclaredPage, date_columns: set[str], params: Mapping[str, Any],
                      strict: bool = False) -> tuple[PageQuery, list[str]]:
    """The query a URL (or the CLI's --filter) asks of `page`, and a note for each value dropped
    (strict: InvalidInput instead of a note). `date_columns`: the filters that are date ranges."""
    from paydash.errors import InvalidInput

    notes: list[str] = []

    def one(value: Any) -> str | None:
        if isinstance(value, (list, tuple)):
            value = value[-1] if value else None
        return None if value in (None, "") else str(value)

    def drop(problem: str) -> None:
        if strict:
            raise InvalidInput(problem)
        notes.append(problem)

    search = one(params.get("q"))
    search = search.strip()[:MAX_SEARCH] if search else None
    filters: list[tuple[str, Any]] = []
    for column in page.filters:
        value = one(params.get(column))
        if value is None:
            continue
        if column in date_columns:
            try:
                filters.append((column, parse_range(value, column)))
            except InvalidInput as exc:
                drop(f"ignored the filter {exc}")
        else:
            filters.append((column, value[:MAX_SEARCH]))
    number = 1
    raw_page = one(params.get("page"))
    if raw_page is not None:
        if raw_page.isdigit() and 0 < int(raw_page) < 10**9:
            number = int(raw_page)
        else:
            drop(f"page {raw_page!r} is not a page number (1, 2, ...)")
    key = one(params.get("key"))
    key = key.strip()[:MAX_SEARCH] if key else None
    return PageQuery(search or None, tuple(filters), number, key or None), notes


def query_to_params(query: PageQuery) -> dict[str, str]:
    """The query string that reproduces `query` (query_from_params reads it back)."""
    params: dict[str, str] = {}
    if query.search:
        params["q"] = query.search
    for column, value in query.filters:
        params[column] = format_range(value) if isinstance(value, tuple) else str(value)
    if query.page > 1:
        params["page"] = str(query.page)
    if query.key:
        params["key"] = query.key
    return params


def unknown_filter(page: DeclaredPage, column: str) -> str:
    """The one-line fix for a filter the page does not offer."""
    offered = ", ".join(page.filters) or "none"
    return f"page {page.name!r} has no filter {column!r}; its filters are {offered}"


def filter_args(page: DeclaredPage, given: list[str]) -> dict[str, str]:
    """--filter COLUMN=VALUE arguments -> {column: value}; InvalidInput on a malformed or unknown one."""
    from paydash.errors import InvalidInput

    found: dict[str, str] = {}
    for item in given:
        column, sep, value = item.partition("=")
        column = column.strip()
        if not sep or not column:
            raise InvalidInput(f"--filter {item!r} is not COLUMN=VALUE; write e.g. --filter status=open "
                               "(a date column: --filter created_at=2026-01-01..2026-01-31)")
        if column not in page.filters:
            raise InvalidInput(unknown_filter(page, column))
        found[column] = value
    return found

