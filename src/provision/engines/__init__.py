"""Controller-side helpers for the engine roles (building and caching engine binaries)."""
