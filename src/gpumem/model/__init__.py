"""What a checkpoint is, with no I/O: the value types, config.json → `Architecture`, the safetensors and GGUF
header parsers, which files hold weights, and counting (one pass over the tensors → `ModelSummary`).

Imports nothing from gpumem but `errors` and `constants`."""
