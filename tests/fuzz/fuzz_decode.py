"""Coverage-guided fuzzing of the decoder and the archive reader with atheris.

    # a long run, on demand (corpus grows in place; crashes saved as crash-*)
    python tests/fuzz/fuzz_decode.py tests/fuzz/corpus -max_total_time=1800 \\
        -artifact_prefix=/tmp/ktrace-fuzz-

    # the smoke run the test suite does (tests/fuzz/test_fuzz_smoke.py)
    python tests/fuzz/fuzz_decode.py -runs=3000 -seed=1 CORPUS_COPY

Options are libFuzzer's (``-help=1``).  What each input is and what is
checked: ``fuzz_targets.py``.  ``tests/fuzz/README.md`` records the last long run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).parent))

#: Vectorised modules: coverage only.  atheris traces comparisons to guide its
#: mutations, but its ``_trace_cmp`` keeps a reference to every non-bool result,
#: i.e. to every numpy boolean array a comparison makes (measured: +90 KB per
#: input, the default 2 GiB RSS limit hit after ~22,000 inputs).
NUMPY_MODULES = ["ktrace_decode.scan", "ktrace_decode.records", "ktrace_decode.decode",
                 "ktrace_decode.render"]


def _instrumented(names: list[str], dataflow: bool):
    try:
        from atheris.import_hook import HookManager

        return HookManager({n.split(".")[0] for n in names}, set(), True, dataflow)
    except (ImportError, TypeError):  # another atheris: everything with dataflow
        return atheris.instrument_imports(include=names)


with _instrumented(NUMPY_MODULES, dataflow=False):
    for _name in NUMPY_MODULES:
        __import__(_name)
with _instrumented(["ktrace_decode", "fuzz_targets"], dataflow=True):
    import fuzz_targets


def main() -> None:
    # An empty corpus directory starts from the seeds.
    for arg in sys.argv[1:]:
        d = Path(arg)
        if not arg.startswith("-") and d.is_dir() and not any(d.iterdir()):
            for name, blob in fuzz_targets.seeds().items():
                (d / f"seed-{name}").write_bytes(blob)
    atheris.Setup(sys.argv, fuzz_targets.one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
