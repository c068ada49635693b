"""Use cases: the only layer that orchestrates the mapping, the store and the rest."""
