"""Visitor management: sign-in/out and watch-list webhooks from the front-office visitor system."""
