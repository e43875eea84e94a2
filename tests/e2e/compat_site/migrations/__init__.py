"""The Note model\x27s table."""
