"""Tools for development and tests; nothing here runs in production."""
