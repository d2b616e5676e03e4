"""Registers the vendor REST access-control adapters."""

from __future__ import annotations
