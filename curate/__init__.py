"""Curation of music source-separation datasets: discovery, manifests, checks, scanning, demo data."""

__version__ = "0.1.0"
