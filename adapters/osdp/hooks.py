"""Registers the OSDP access-control adapter."""

from __future__ import annotations
