"""Fixtures for the cluster tests (issue 9): a whole test bed per test, in
network namespaces of its own (bed.sh, bed.py). Run by scripts/test.sh
(`make test`) as root; the namespaces need it."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bed import Bed, have_tools  # noqa: E402
from lib.proxy import SANITIZER_MARKS  # noqa: E402


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    out = yield
    rep = out.get_result()
    if rep.when == "call" and rep.failed:
        item.bed_failed = True


@pytest.fixture
def bed(request):
    """Factory: bed(**Bed kwargs) brings a bed up; it is torn down at the
    end of the test, and no node may have left a sanitizer report."""
    why = have_tools()
    if why:
        pytest.skip(why)
    beds = []

    def make(**kw):
        b = Bed(**kw)
        beds.append(b)
        b.up()
        return b

    yield make
    problems = []
    for b in beds:
        b.down()  # stops the processes; their logs stay
        for name, p in b.procs.items():
            if name.startswith("n"):
                err = p.stderr()
                if any(m in err for m in SANITIZER_MARKS):
                    problems.append("%s: %s" % (name, err[-3000:]))
        if problems or getattr(request.node, "bed_failed", False):
            print("bed %s: logs kept in %s" % (b.id, b.dir))
        else:
            b.remove_dir()
    if problems:
        pytest.fail("sanitizer reports:\n" + "\n".join(problems))
