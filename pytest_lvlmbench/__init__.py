"""pytest plugin for benchmarking compressed LVLMs (registered as ``lvlmbench``)."""
