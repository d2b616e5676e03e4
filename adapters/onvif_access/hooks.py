"""Registers the ONVIF Profile C access-control adapter."""

from __future__ import annotations
