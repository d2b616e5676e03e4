"""Bridges to outside systems (ONVIF, OSDP, access control, visitor management, dispatch)."""
