"""Registers the visitor-system adapters."""

from __future__ import annotations
