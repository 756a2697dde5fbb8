"""An input file that cannot be used, with every reason at once (configuration, catalogue)."""

from __future__ import annotations

from collections.abc import Sequence


class Problems(Exception):
    """``problems`` lists each reason as ``<file>: <key path>: <problem>``, one a line."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))
