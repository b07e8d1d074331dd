"""The demo: generated lending data and the walk-through `setpoint demo` runs."""
