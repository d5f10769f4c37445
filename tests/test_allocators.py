"""The ``ktrace`` process keeps freed memory for a while (ktrace_decode.allocators).

Each check runs in a fresh interpreter: Polars hands jemalloc its options
when it is imported (its defaults, then whatever ``_RJEM_MALLOC_CONF`` held,
which win), and mallopt changes the whole process.
"""

import os
import platform
import subprocess
import sys

import pytest

from ktrace_decode import allocators


def _run(code: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items()
             if k != allocators.JEMALLOC_ENV and not k.startswith("MALLOC_")
             and k != "GLIBC_TUNABLES"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env={**clean, **env})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def test_the_ktrace_command_sets_polars_jemalloc_before_polars_loads():
    out = _run("import os, sys\n"
               "from ktrace_decode.cli import main\n"
               "try:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
               "print(os.environ.get('_RJEM_MALLOC_CONF'), 'polars' in sys.modules)")
    # Polars was imported after apply(), and took the options as overrides.
    conf, loaded = out.splitlines()[-1].rsplit(" ", 1)
    assert conf.endswith("," + allocators.JEMALLOC_CONF) and loaded == "True"


def test_apply_reports_what_it_set():
    out = _run("from ktrace_decode import allocators as a; print(sorted(a.apply()))")
    want = [allocators.JEMALLOC_ENV] + (["mallopt"] if GLIBC else [])
    assert out == str(sorted(want))


def test_importing_the_package_changes_nothing():
    out = _run("import os, ktrace_decode.pipeline.streamed\n"
               "print(os.environ.get('_RJEM_MALLOC_CONF'))")
    assert allocators.JEMALLOC_CONF not in out


def test_too_late_for_jemalloc_once_polars_is_loaded():
    out = _run("import polars, os\nfrom ktrace_decode import allocators as a\n"
               "print(sorted(a.apply()), os.environ.get('_RJEM_MALLOC_CONF'))")
    done, conf = out.split("] ")
    assert done + "]" == str(["mallopt"] if GLIBC else []) and allocators.JEMALLOC_CONF not in conf


@pytest.mark.parametrize("env", [{"_RJEM_MALLOC_CONF": "dirty_decay_ms:0"},
                                 {"MALLOC_ARENA_MAX": "2"},
                                 {"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=65536"}])
def test_the_users_own_settings_win(env):
    out = _run("import os\nfrom ktrace_decode import allocators as a\n"
               "print(sorted(a.apply()), os.environ.get('_RJEM_MALLOC_CONF'))", **env)
    mine = env.get("_RJEM_MALLOC_CONF")
    set_ = [] if mine else [allocators.JEMALLOC_ENV]
    if GLIBC and mine:
        set_.append("mallopt")
    done, conf = out.split("] ")
    assert done + "]" == str(sorted(set_))
    assert conf == (mine or allocators.JEMALLOC_CONF)


def test_give_back_returns_free_memory_anywhere():
    out = _run("import numpy as np\nfrom ktrace_decode import allocators as a\n"
               "x = np.ones(1 << 26)\ndel x\na.give_back()\na.give_back()\nprint('ok')")
    assert out == "ok"
