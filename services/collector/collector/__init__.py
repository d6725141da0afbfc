"""Collector: reads meters over Modbus, says readings and status, executes relay commands."""
