"""gentriage."""
