"""``python -m kvorum.sim``: see kvorum.sim.cli."""

from kvorum.sim.cli import main

raise SystemExit(main())
