"""The `/v1` HTTP API: health, model description, predictions (JSON and uploads), the page."""
