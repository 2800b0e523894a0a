"""Errors a user can act on. Their message names the thing that is wrong and the fix."""


class PaydashError(Exception):
    """Base class: str(error) is a complete, user-facing sentence."""


class ConfigError(PaydashError):
    pass


class DatabaseUnreachable(PaydashError):
    pass


class TableMissing(PaydashError):
    pass


class ColumnMissing(PaydashError):
    pass


class QueryTimeout(PaydashError):
    pass


class InvalidInput(PaydashError):
    pass
