"""The dataset on disk: track discovery, audio I/O, per-file checks and the manifest schema."""
