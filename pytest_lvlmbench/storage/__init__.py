"""What a run keeps on disk: saved runs (merge, compare, shards) and atomic file writes."""
