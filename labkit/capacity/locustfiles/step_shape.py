"""Locustfile fragment: the step shape that stops itself at the SLO (see labkit.capacity.shapes)."""

from locust import events

from labkit.capacity.shapes import StepShape, add_step_arguments

events.init_command_line_parser.add_listener(add_step_arguments)

__all__ = ["StepShape"]
