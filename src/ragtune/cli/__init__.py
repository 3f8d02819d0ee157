"""The ``ragtune`` command: one module per command group, one error boundary in main."""
