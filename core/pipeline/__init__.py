"""The video pipeline: camera runners, motion gate, camera health."""
