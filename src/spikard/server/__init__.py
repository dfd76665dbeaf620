"""Server layer: listeners, graceful shutdown, the runner and the command line."""
