"""Plain records everything may use: settings, records, run options, capabilities. Imports nothing
of the benchmark above it (no torch)."""
