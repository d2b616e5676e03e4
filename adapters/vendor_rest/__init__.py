"""Vendor access-control REST APIs: a base (token auth, paging, retries, webhook receiver) and worked adapters."""
