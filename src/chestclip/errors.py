"""The one exception family the CLI turns into a one-line message (no traceback)."""


class ChestClipError(ValueError):
    """Bad input from the user: a path, a file, a config value. The message names it."""
