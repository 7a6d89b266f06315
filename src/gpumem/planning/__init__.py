"""What a model needs and where it fits: the memory model, the engine table (`engines/`), the GPU catalog and
prices, plans, speed and fine-tuning memory. Takes (summary, architecture, options); no I/O but package data.

Imports `model`; never `reading` or `output`."""
