"""The gateway: one table of operations, matched once per request, and what runs them."""
