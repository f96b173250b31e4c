"""Plumbing shared by every package: errors, atomic writes, output paths, the command-line guard."""
