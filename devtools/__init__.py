"""Local development helpers (Azurite, the demo). Not part of the deployed package."""
