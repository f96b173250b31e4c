"""Self-contained HTML reports of curation and training runs."""
