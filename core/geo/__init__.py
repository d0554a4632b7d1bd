"""Geography every part may use: Shenzhen's districts (``core.geo.districts``), from a file committed beside it."""
