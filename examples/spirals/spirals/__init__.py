"""Three interleaved spirals in the plane: a user's project that trains its own network."""
