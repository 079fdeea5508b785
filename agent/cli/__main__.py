"""`python -m agent.cli` is `sre-agent`."""

from agent.cli import main

main()
