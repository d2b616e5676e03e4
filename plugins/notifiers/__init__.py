"""Built-in notifiers: log and webhook."""
