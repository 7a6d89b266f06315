"""Where a model's metadata comes from: the Hub (HTTP), local files, the result cache and the shipped snapshot,
and the source policy between them (`sources`). Reads headers, never weights; hands tensors to `model.params`.

Imports `model`; never `planning` or `output`."""
