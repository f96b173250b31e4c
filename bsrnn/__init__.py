"""Band-Split RNN (Luo & Yu 2022, arXiv 2209.15174): model, band configurations, chunked separation."""
