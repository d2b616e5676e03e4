"""Emergency dispatch: CAP 1.2 alerts over HTTP and SIP (RFC 8876)."""
