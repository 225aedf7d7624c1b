"""The inference runtime: the verified model, its interpreters, and recognition on bytes and
arrays. It knows nothing of HTTP: no web framework, no metrics library."""
