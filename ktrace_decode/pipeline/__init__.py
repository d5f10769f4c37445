"""The analysis pipeline: records -> events -> invalidation episodes -> views and exports.

Every stage is a pure ``pl.LazyFrame -> pl.LazyFrame`` function; only
:mod:`.io` reads or writes files.
"""
