"""Root conftest: its presence puts the repository root on sys.path (rootdir-relative
imports of benchmarks/ and tests/ helpers). Nothing else belongs here."""
