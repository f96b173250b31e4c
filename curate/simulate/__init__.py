"""Demo data and label noise with ground truth: synthetic songs, corruptions, manifest truth."""
