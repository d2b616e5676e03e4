"""ONVIF Profile C: doors and access points through the DoorControl and AccessControl services."""
