"""Pure billing rules: no database, bus or event loop in here."""
