"""Versioned datasets, their profiles and contracts, validation and the quarantine."""
