"""Paths of the repository and its recorded fixtures; the daemon driver lives in appliance.testing."""

from __future__ import annotations

from pathlib import Path

from appliance.testing.daemon import DaemonProcess, backend_headers, free_port

REPO = Path(__file__).resolve().parent.parent
HW_FIXTURES = REPO / "tests" / "fixtures" / "hardware"

__all__ = ["HW_FIXTURES", "REPO", "DaemonProcess", "backend_headers", "free_port"]

