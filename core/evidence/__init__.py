"""Evidence: clips remuxed from a per-camera packet ring buffer, snapshots, sha256, retention."""
