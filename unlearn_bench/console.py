"""What the entry points print: the run's own messages and warnings that concern the user, not
library internals (issue 13: a default run's console fits on one screen)."""

from __future__ import annotations

import warnings

# Raised inside Lightning by its own use of torch internals; nothing a user can act on.
LIBRARY_WARNINGS = (
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning),
)


def quiet_library_warnings() -> None:
    """Hide :data:`LIBRARY_WARNINGS`, and nothing else."""
    for message, category in LIBRARY_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
