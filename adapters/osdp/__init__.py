"""OSDP access control: campusguard as the Control Panel (libosdp)."""
