"""Shared fixtures. The SDK's own test kit (``campusguard.sdk.testing``) is used like a vendor would."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def python() -> str:
    return sys.executable
