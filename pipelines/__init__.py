"""Training, evaluation and separation pipelines for BSRNN (``pipelines`` command line)."""
