"""srtp package."""
