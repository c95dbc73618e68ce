"""Self-service: the profile page, and setting a password with a reset link."""
