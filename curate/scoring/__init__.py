"""Evidence per fragment: spectra, embedders, reference pool, bleed, alignment, label model, quality."""
