"""The analysis pipeline: records -> events -> invalidation episodes -> views and exports.

Every stage is a pure ``pl.LazyFrame -> pl.LazyFrame`` function:
``events.events``, ``episodes.episodes`` and the tables in ``tables``; only
``io`` writes files.  The library entry for the CLI and the TUI is
:func:`analyze_decoded`.
"""

from .analysis import Analysis, analyze_decoded
from .summary import Selection

__all__ = ["Analysis", "Selection", "analyze_decoded"]
