"""Running the app: the `digits-serve` command line, worker processes, graceful shutdown."""
