"""Sub-commands of the `ftui` CLI, one module per area; each exposes `add_commands(subparsers)`."""
