"""``setpoint loadtest``: an open-loop load generator against a running server, the
sustainable rate it finds, the capacity plan that follows, and the runs recorded.

- ``_client.py``: the HTTP/1.1 keep-alive connections and the dispatcher that times
  each request from when it was due;
- ``schedule.py``: arrival schedules, a step's figures (HdrHistogram), stepping up;
- ``generator.py``: the event loop that runs them;
- ``target.py``: the server's address and version, and the request bodies;
- ``plan.py``: replicas and cost, and batch scoring's cost beside them;
- ``runs.py``: the ``load_tests`` records; ``runner.py``: the command as a function.
"""
