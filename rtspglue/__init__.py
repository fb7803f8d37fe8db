"""rtspglue package."""
