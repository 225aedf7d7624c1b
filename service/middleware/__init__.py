"""Pure-ASGI middleware: metrics, API key, request timeout, body limit."""
