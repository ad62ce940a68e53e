"""One widget per file; each carries its own look in DEFAULT_CSS."""
