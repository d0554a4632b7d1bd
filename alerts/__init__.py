"""Alert lifecycle, routing to departments, channels, CAP 1.2, the officers' API and console (issue 5)."""
