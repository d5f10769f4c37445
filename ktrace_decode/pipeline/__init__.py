"""The analysis pipeline: records -> events -> invalidation episodes -> views and exports.

Every stage is a pure ``pl.LazyFrame -> pl.LazyFrame`` function (events.py,
episodes.py, tables.py); only io.py writes files.  The library entry for the
CLI and the TUI is :func:`analyze_decoded`.
"""

from .analysis import Analysis, analyze_decoded
from .episodes import episodes
from .events import events
from .summary import Selection

__all__ = ["Analysis", "Selection", "analyze_decoded", "episodes", "events"]
