"""Interop tests run real corosync (and Pacemaker). Outside CI they skip (saying why) when
corosync, Pacemaker or root is missing; in CI (PYTOTEM_REQUIRE_INTEROP=1, set by .ci/run)
they fail instead."""

from __future__ import annotations

import os

import pytest

from interop.realcorosync import corosync_binary


def _require(reason: str) -> None:
    if os.environ.get("PYTOTEM_REQUIRE_INTEROP") == "1":
        pytest.fail(f"interop test cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def corosync_available() -> str:
    binary = corosync_binary()
    if binary is None:
        _require("corosync is not installed (apt-get install corosync)")
    if os.geteuid() != 0:
        _require("real corosync needs root")
    return binary


@pytest.fixture
def totemd_ok(corosync_available: str) -> None:
    """totemd can start here (besides real corosync): the interop tests of mixed rings."""
    from interop.cluster import totemd_available

    reason = totemd_available()
    if reason is not None:
        pytest.fail(f"totemd cannot run: {reason}")


@pytest.fixture
def tshark_available() -> None:
    """Wireshark's tshark, for looking at what is on the wire."""
    import shutil

    if shutil.which("tshark") is None:
        _require("tshark is not installed (apt-get install tshark)")


@pytest.fixture
def pacemaker_available() -> None:
    """Pacemaker 2.1.5's daemons and tools, the Dummy agent and the hacluster user."""
    from interop.pacemaker import pacemaker_available as missing

    reason = missing()
    if reason is not None:
        _require(reason)


def pytest_collection_modifyitems(items):
    # One corosync at a time: they share port 5405 on loopback and libqb's socket names.
    for item in items:
        if "interop" in str(item.fspath):
            item.add_marker(pytest.mark.xdist_group("corosync"))
            item.add_marker(pytest.mark.interop)
