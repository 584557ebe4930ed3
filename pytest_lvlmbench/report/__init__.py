"""What a run shows: terminal tables, markdown/CSV/JSON documents, plots."""
