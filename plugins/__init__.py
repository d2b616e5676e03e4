"""Built-in plugins. They import only ``campusguard.sdk``, exactly like a third-party plugin."""
