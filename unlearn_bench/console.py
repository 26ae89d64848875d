"""What the entry points print: the run's own messages and warnings that concern the user, not
library internals (issue 13: a default run's console fits on one screen)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from unlearn_bench.config import ConfigError
from unlearn_bench.data.validation import DataError

# Raised inside Lightning by its own use of torch internals; nothing a user can act on.
LIBRARY_WARNINGS = (
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning),
)


def quiet_library_warnings() -> None:
    """Hide :data:`LIBRARY_WARNINGS`, and nothing else."""
    for message, category in LIBRARY_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)


@contextmanager
def one_line_errors() -> Iterator[None]:
    """A bad config or data file ends the entry point with one line naming it, not a traceback
    (``HYDRA_FULL_ERROR=1`` does not change this: the message already names the culprit)."""
    try:
        yield
    except (ConfigError, FileNotFoundError) as e:
        raise SystemExit(f"Config error: {e}") from None
    except DataError as e:
        raise SystemExit(f"Data error: {e}") from None
