"""Locustfile fragment: a linear ramp to -u users, held until -t (see labkit.capacity.shapes)."""

from locust import events

from labkit.capacity.shapes import RampShape, add_ramp_arguments

events.init_command_line_parser.add_listener(add_ramp_arguments)

__all__ = ["RampShape"]
