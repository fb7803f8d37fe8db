"""sipglue package."""
