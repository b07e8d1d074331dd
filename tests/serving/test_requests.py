"""The single-process request tally renders what prometheus_client's own classes would."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from setpoint.serving._requests import RequestTally

BUCKETS = (0.001, 0.01, 0.1, 1.0)
REQUESTS = ("t_requests", "Requests.")
LATENCY = ("t_seconds", "Latency.")

keys = st.tuples(
    st.sampled_from(["credit", "fraud"]),
    st.sampled_from(["", "1", "2"]),
    st.sampled_from(["native", "oip"]),
    st.sampled_from(["200", "422"]),
)
# Bucket bounds themselves are drawn often: an observation equal to a bound is in it.
seconds = st.one_of(st.sampled_from(BUCKETS), st.floats(0, 5, allow_nan=False))


def samples(registry: CollectorRegistry) -> list[str]:
    """The exposition's sample lines, without the _created ones only the classes have."""
    return sorted(
        line
        for line in generate_latest(registry).decode().splitlines()
        if line and not line.startswith("#") and "_created" not in line
    )


@given(st.lists(st.tuples(keys, seconds), max_size=60))
def test_a_scrape_matches_prometheus_clients_counter_and_histogram(
    observations: list[tuple[tuple[str, str, str, str], float]],
) -> None:
    ours = CollectorRegistry()
    tally = RequestTally(REQUESTS, LATENCY, BUCKETS)
    ours.register(tally)
    theirs = CollectorRegistry()
    counter = Counter(*REQUESTS, ["endpoint", "version", "protocol", "status"], registry=theirs)
    histogram = Histogram(*LATENCY, ["endpoint", "protocol"], buckets=BUCKETS, registry=theirs)
    for key, value in observations:
        tally.observe(key, value)
        counter.labels(*key).inc()
        histogram.labels(key[0], key[2]).observe(value)
    assert samples(ours) == samples(theirs)
