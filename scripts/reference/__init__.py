"""Independent float64 reference for seek's golden tests (see README.md in this directory)."""
