"""The `llm3d` command line: one entry point, one subcommand per job.

Subcommands register themselves in `COMMANDS` and import their heavy dependencies only when
they run, so `llm3d --help` stays fast.
"""
