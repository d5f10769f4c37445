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

with atheris.instrument_imports(include=["ktrace_decode", "fuzz_targets"]):
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
