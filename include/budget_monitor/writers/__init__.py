"""The year-end writers (one module per output)."""
