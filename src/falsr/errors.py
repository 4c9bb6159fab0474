"""The base class of mistakes a user can fix (bad genome, missing data, wrong file)."""


class UserError(ValueError):
    """Raised for bad input; entry points print its message as one line, without a traceback."""
