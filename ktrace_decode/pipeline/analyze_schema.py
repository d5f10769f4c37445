"""The JSON Schema (draft 2020-12) of the ``ktrace analyze --json`` document.

Kept as Python data so it ships inside the package with no package-data
configuration; ``ktrace analyze --json-schema`` prints it for consumers.
"""

from __future__ import annotations

from typing import Any

from .. import schema
from .summary import SCHEMA_ID

_INT = {"type": "integer"}
_UINT = {"type": "integer", "minimum": 0}
_OPT_INT = {"type": ["integer", "null"]}
_OPT_UINT = {"type": ["integer", "null"], "minimum": 0}
_OPT_STR = {"type": ["string", "null"]}


def _obj(props: dict[str, Any]) -> dict[str, Any]:
    """An object with exactly these properties, all required."""
    return {"type": "object", "properties": props, "required": list(props),
            "additionalProperties": False}


_EPISODE = _obj({
    "nodeid": _UINT,
    "userspace_id": _OPT_UINT,
    "first_seen_us": _OPT_UINT,
    "start_us": _OPT_UINT,
    "end_us": _OPT_UINT,
    "duration_us": _OPT_INT,
    "attempts": _UINT,
    "write_errors": _UINT,
    "pages_errors": _UINT,
    "last_err": _OPT_INT,
    "last_err_name": _OPT_STR,
    "pending_files": _UINT,
    "blocked_opens": _UINT,
    "max_open_wait_us": _OPT_INT,
    "start_cpu": _OPT_UINT,
    "end_cpu": _OPT_UINT,
    "status": {"enum": list(schema.STATUSES)},
    "lost_overlap": {"type": "boolean"},
    "open_for_at_least_us": _OPT_INT,
    "start_wall": _OPT_STR,
    "end_wall": _OPT_STR,
})

_CPU = _obj({
    "cpu": _UINT, "file": {"type": "string"}, "layout": {"enum": ["stream", "raw"]},
    "records": _UINT, "first_us": _OPT_UINT, "last_us": _OPT_UINT,
    "dropped_at_least": _UINT, "drop_windows": _UINT, "skipped_bytes": _UINT, "resyncs": _UINT,
})

_TRACE = _obj({
    "path": {"type": "string"},
    "first_us": _OPT_UINT,
    "last_us": _OPT_UINT,
    "span_us": _OPT_UINT,
    "first_wall": _OPT_STR,
    "last_wall": _OPT_STR,
    "cpus": _UINT,
    "records": _UINT,
    "text_records": _UINT,
    "iotimes_records": _UINT,
    "unknown_records": _UINT,
    "invalidate_records": _UINT,
    "dropped_at_least": _UINT,
    "drop_windows": _UINT,
    "skipped_bytes": _UINT,
    "resyncs": _UINT,
    "long_text_records": _UINT,
    "per_cpu": {"type": "array", "items": _CPU},
})

_PROPS: dict[str, Any] = {
    "schema": {"const": SCHEMA_ID},
    "selection": _obj({"nodeid": _OPT_UINT, "since_us": _OPT_INT, "until_us": _OPT_INT,
                       "top": _UINT}),
    "clock": _obj({"source": {"enum": ["none", "--boot-time", "--wall-clock"]},
                   "boot_time_us": _OPT_INT}),
    "trace": _TRACE,
    "invalidations": _obj({
        "episodes": _UINT, "nodeids": _UINT, "complete": _UINT, "in_progress": _UINT,
        "no_start": _UINT, "lost_overlap": _UINT,
        "duration_us": _obj({"count": _UINT, "p50": _OPT_INT, "p90": _OPT_INT, "p99": _OPT_INT,
                             "max": _OPT_INT, "total": _INT}),
    }),
    "slowest": {"type": "array", "items": _EPISODE},
    "in_progress": {"type": "array", "items": _EPISODE},
    "retries": _obj({"retries": _UINT, "episodes_with_retries": _UINT,
                     "max_attempts": _OPT_UINT}),
    "errors": {"type": "array", "items": _obj({
        "kind": {"enum": ["write", "pages"]}, "err": _OPT_INT, "name": _OPT_STR,
        "count": _UINT})},
    "blocked_opens": _obj({"count": _UINT, "episodes": _UINT, "worst_wait_us": _OPT_INT,
                           "worst_nodeid": _OPT_UINT}),
    "poisoned_files": _obj({"count": _UINT, "distinct_files": _UINT, "nodeids": _UINT}),
    "warnings": {"type": "array", "items": {"type": "string"}},
    # only with --nodeid: every episode of that nodeid
    "episodes": {"type": "array", "items": _EPISODE},
    # the storage underneath (pipeline/storage.py)
    "io": {"type": "object", "required": ["iotimes_records", "per_cs", "slowest_io"],
           "properties": {"iotimes_records": _UINT,
                          "per_cs": {"type": "array", "items": {"type": "object"}},
                          "slowest_io": {"type": "array", "items": {"type": "object"}}}},
    "metrics": {"type": ["object", "null"]},
}

ANALYZE_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "urn:ktrace-decode:analyze:1",
    "title": "ktrace analyze --json",
    "type": "object",
    "properties": _PROPS,
    # io / metrics are added by analyze_decoded(), not by summarize() alone
    "required": [k for k in _PROPS if k not in ("episodes", "io", "metrics")],
    "additionalProperties": False,
}
