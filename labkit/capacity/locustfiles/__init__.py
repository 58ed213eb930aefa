"""Shape-only locustfiles: name one beside a scenario, ``-f scenarios/X.py,<this dir>/step_shape.py``."""
