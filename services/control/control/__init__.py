"""Control: turns trip/close requests into sealed commands and records their outcomes."""
