"""The campusguard runtime: config, plugin host, supervisor, bus, store, outbox and CLI.

Plugins never import this package; they use :mod:`campusguard.sdk`.
"""
