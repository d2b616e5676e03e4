"""Registers the CAP dispatchers."""

from __future__ import annotations
