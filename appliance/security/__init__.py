"""API keys: creation, hashing, lookup, revocation."""
