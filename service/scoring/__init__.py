"""Batch scoring of image files: `digits-score`, against a server or in process."""
