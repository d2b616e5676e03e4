"""The on-site visitor roster, kept in the store from visitor events, and what a lockdown does with it."""
