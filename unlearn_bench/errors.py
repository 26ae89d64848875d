"""The errors a user can act on. The entry points print each as one line that names the culprit
(a config key, a file and row, a folder) and the fix, never as a traceback."""

from __future__ import annotations


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key and the fix."""


class DataError(ValueError):
    """A data file that cannot be used; the message names the file (and row and field)."""


class FolderError(OSError):
    """A folder that cannot be read or written (a model folder without weights, a full disk); the
    message names the folder."""


class ArgumentError(ValueError):
    """A constructor argument out of range. The config check names the key the user typed for it
    (``defense.eta`` for the SU term's ``weight``), since the class only knows its own argument."""

    def __init__(self, argument: str, value, requirement: str):
        self.argument, self.value, self.requirement = argument, value, requirement
        super().__init__(f"{argument}={value!r} {requirement}")


class Problems(Exception):
    """Everything found wrong before training, one line each, reported together."""

    def __init__(self, lines: list[str]):
        self.lines = lines
        super().__init__("\n".join(lines))


LABELS = {
    ConfigError: "Config error",
    FileNotFoundError: "Config error",
    DataError: "Data error",
    FolderError: "Folder error",
}


def problem_lines(error: Exception) -> list[str] | None:
    """``error`` as the lines an entry point prints (one per problem), or None for an error that
    is a bug and keeps its traceback."""
    if isinstance(error, Problems):
        return error.lines
    for kind, label in LABELS.items():
        if isinstance(error, kind):
            return [f"{label}: {line}" for line in str(error).splitlines()]
    return None
