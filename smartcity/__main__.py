from __future__ import annotations

from smartcity.cli import main

main()
