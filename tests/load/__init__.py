"""Load and fault tests: a system under test (``server``) and a load driver (``driver``)."""
