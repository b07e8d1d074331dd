"""The dashboard at ``/ui``: what the models are doing, for the people around them.

See ``app.py`` for the routes and who may see and do what, ``pages/`` for what each
page gathers, ``templates/`` and ``static/`` for how it looks, ``charts.py`` for the
SVG the server draws.
"""
