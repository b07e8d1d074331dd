"""The dashboard's SVG charts: valid XML, nothing the Content-Security-Policy forbids,
user text escaped, described in words, and the shapes each chart promises."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markupsafe import Markup

from setpoint.ui.charts import (
    Node,
    Series,
    bar_chart,
    heatmap,
    line_chart,
    lineage_graph,
    pareto_chart,
    pareto_front,
    sparkline,
    time_ticks,
)

SVG = "{http://www.w3.org/2000/svg}"
NASTY = "<script>&\"'"
START = datetime(2026, 3, 3, tzinfo=UTC)


def hours(n: int) -> list[datetime]:
    return [START + timedelta(hours=i) for i in range(n)]


def parse(chart: Markup) -> ET.Element:
    assert isinstance(chart, Markup)
    root = ET.fromstring(str(chart))
    assert root.tag == f"{SVG}svg"
    return root


def texts(root: ET.Element) -> list[str]:
    return [el.text or "" for el in root.iter()]


def by_class(root: ET.Element, name: str) -> list[ET.Element]:
    return [el for el in root.iter() if name in (el.get("class") or "").split()]


def nodes() -> list[Node]:
    return [
        Node("t", "all traffic", "traffic"),
        Node("p", "prod", "deployment", note="90% / 10%"),
        Node("m1", "fraud@1", "model", href="/ui/models/fraud/1"),
        Node("m2", NASTY, "model", note="champion", href="javascript:alert(1)"),
        Node("d1", "customers@1", "dataset", note="3,200 rows"),
        Node("d2", "customers@2", "dataset"),
        Node("m1", "a second fraud@1", "model"),  # a repeated id: the first wins
        Node("x", "something else", "notebook"),
    ]


EDGES = [
    ("d1", "m1"),
    ("d2", "m2"),
    ("m1", "p"),
    ("m2", "p"),
    ("p", "t"),
    ("p", "gone"),
    ("m1", "x"),
]

CHARTS: dict[str, Callable[[], Markup]] = {
    "line": lambda: line_chart(
        [
            Series(
                NASTY, [(t, float(i)) for i, t in enumerate(hours(24))], band=[(0.0, 30.0)] * 24
            ),
            Series("p50", [(t, 1.0) for t in hours(24)], dashed=True),
        ],
        title=NASTY,
        unit="ms",
        threshold=20,
        threshold_label=NASTY,
    ),
    "bars": lambda: bar_chart([(NASTY, 3.0), ("age out of range", 1200)], title=NASTY, unit="rows"),
    "heatmap": lambda: heatmap(
        [NASTY, "age"],
        hours(3),
        [[0.1, None, 0.9], [0.2, 0.3]],
        flagged=[[False, False, True]],
        title=NASTY,
    ),
    "lineage": lambda: lineage_graph(nodes(), EDGES, title=NASTY),
    "pareto": lambda: pareto_chart(
        [("original", 2e-4, 0.91), (NASTY, 5e-5, 0.91), ("pruned", 4e-5, 0.88)],
        title=NASTY,
        x_unit="cost per 1,000",
        y_unit="roc_auc",
        higher_is_better=True,
    ),
    "empty": lambda: line_chart([], title=NASTY),
}


@pytest.mark.parametrize("kind", CHARTS)
def test_charts_are_valid_svg_within_the_csp_and_labelled(kind: str) -> None:
    chart = CHARTS[kind]()
    root = parse(chart)
    assert "style=" not in chart
    assert not [el for el in root.iter() if el.tag.endswith("style") or "style" in el.attrib]
    # a lineage graph's boxes are links: a group, whose children stay reachable
    assert root.get("role") == ("group" if kind == "lineage" else "img")
    assert root.get("width") == "100%"
    assert root.get("viewBox")
    title_id, desc_id = (root.get("aria-labelledby") or "").split()
    title = root.find(f"{SVG}title")
    desc = root.find(f"{SVG}desc")
    assert title is not None
    assert desc is not None
    assert title.get("id") == title_id
    assert desc.get("id") == desc_id
    assert title.text == NASTY
    assert desc.text


@pytest.mark.parametrize("kind", CHARTS)
def test_user_text_stays_text(kind: str) -> None:
    chart = CHARTS[kind]()
    root = parse(chart)
    assert "<script" not in chart
    assert not [el for el in root.iter() if el.tag.endswith("script")]
    assert any(NASTY in text for text in texts(root))


def test_ids_are_unique_per_chart_and_safe() -> None:
    a = parse(line_chart([], title="Latency"))
    b = parse(line_chart([], title="Rows"))
    assert a.get("aria-labelledby") != b.get("aria-labelledby")
    c = parse(line_chart([], title="Latency", chart_id='1 "x"<y>'))
    assert all(re.fullmatch(r"[A-Za-z][\w-]*", i) for i in c.get("aria-labelledby", "").split())


def test_line_chart_describes_the_series_in_words() -> None:
    points = [(START + timedelta(days=i), v) for i, v in enumerate([20.0, 12.0, 40.0, 15.0])]
    desc = parse(line_chart([Series("p99 latency", points)], title="x", unit="ms")).find(
        f"{SVG}desc"
    )
    assert desc is not None
    assert (
        desc.text == "p99 latency from 3 Mar to 6 Mar: lowest 12 ms, highest 40 ms, latest 15 ms."
    )


@pytest.mark.parametrize("gap", [None, math.nan, math.inf])
def test_a_gap_splits_the_line(gap: float | None) -> None:
    points = [(t, gap if i == 5 else float(i)) for i, t in enumerate(hours(10))]
    root = parse(line_chart([Series("rows", points)], title="Rows"))
    assert [el.tag for el in by_class(root, "chart-series")] == [f"{SVG}polyline"] * 2


def test_a_lone_point_between_gaps_is_a_dot() -> None:
    points = [(t, 1.0 if i == 1 else None) for i, t in enumerate(hours(3))]
    root = parse(line_chart([Series("rows", points)], title="Rows"))
    assert [el.tag for el in by_class(root, "chart-series")] == [f"{SVG}circle"]


def test_band_threshold_and_legend() -> None:
    root = parse(CHARTS["line"]())
    assert len(by_class(root, "chart-band")) == 1
    assert by_class(root, "chart-threshold")
    legend = " ".join(texts(by_class(root, "chart-legend")[0]))
    assert "p50 (dashed)" in legend
    assert f"{NASTY} (shaded: range)" in legend
    dashes = [el.get("stroke-dasharray") for el in by_class(root, "chart-series")]
    assert dashes == [None, "6 4"]


def test_bar_chart_labels_and_values() -> None:
    root = parse(bar_chart([("rule a", 1234), ("rule b", math.nan)], title="Refused", unit="rows"))
    words = texts(root)
    assert "1,234 rows" in words
    assert "no value" in words
    assert len(by_class(root, "chart-bar")) == 1


def test_heatmap_marks_drifted_cells_beyond_colour() -> None:
    root = parse(CHARTS["heatmap"]())
    (flag,) = by_class(root, "chart-flag")
    rect, circle = flag.find(f"{SVG}rect"), flag.find(f"{SVG}circle")
    assert rect is not None
    assert circle is not None
    (group,) = [g for g in root.iter(f"{SVG}g") if flag in list(g)]
    assert (group.get("stroke"), group.get("fill")) == ("#000", "none")  # inherited outline
    assert rect.get("fill") is None
    assert circle.get("fill") == "#fff"
    tip = flag.find(f"{SVG}title")
    assert tip is not None
    assert tip.text == f"{NASTY}, 3 Mar 02:00: drift score 0.9 (drifted)"
    assert by_class(root, "chart-nodata")  # the None cell and the short row's missing one


def test_big_heatmap_titles_only_drifted_cells() -> None:
    rows, columns = [f"feature_{i}" for i in range(20)], hours(168)
    values = [[(i * j % 97) / 97 for j in range(168)] for i in range(20)]
    flagged = [[(i + j) % 50 == 0 for j in range(168)] for i in range(20)]
    chart = heatmap(rows, columns, values, flagged=flagged, title="Drift")
    root = parse(chart)
    assert len(by_class(root, "chart-flag")) == sum(map(sum, flagged))
    cell_titles = [el for el in root.iter(f"{SVG}rect") if el.find(f"{SVG}title") is not None]
    assert cell_titles == []
    assert len(chart) < 150_000  # compact: one path per colour, not 3,360 titled rects


def test_lineage_graph() -> None:
    root = parse(lineage_graph(nodes(), EDGES, title="Lineage"))
    drawn = by_class(root, "chart-node")
    assert len(drawn) == 7
    assert len(by_class(root, "chart-edge")) == 6  # the edge to "gone" is left out
    assert [a.get("href") for a in root.iter(f"{SVG}a")] == ["/ui/models/fraud/1"]
    assert root.find(f"{SVG}defs/{SVG}marker") is not None

    def x_of(kind: str) -> set[float]:
        rects = [g.find(f"{SVG}rect") for g in by_class(root, f"chart-node-{kind}")]
        return {float(r.get("x", "nan")) for r in rects if r is not None}

    columns = [x_of(kind) for kind in ("dataset", "model", "deployment", "traffic", "other")]
    assert all(len(xs) == 1 for xs in columns)  # one column a kind
    xs = [min(c) for c in columns]
    assert xs == sorted(set(xs))  # left to right, none shared


def test_lineage_orders_a_column_by_its_parents() -> None:
    graph = [Node("d1", "d1", "dataset"), Node("d2", "d2", "dataset")]
    graph += [Node("m2", "m2", "model"), Node("m1", "m1", "model")]
    root = parse(lineage_graph(graph, [("d1", "m1"), ("d2", "m2")], title="L"))
    y = {g.findtext(f"{SVG}text"): g.find(f"{SVG}rect") for g in by_class(root, "chart-node")}
    assert float(y["m1"].get("y", "0")) < float(y["m2"].get("y", "0"))  # type: ignore[union-attr]


def test_sparkline() -> None:
    root = parse(sparkline([1.0, None, 2.0, 3.0], label="rising"))
    assert (root.get("role"), root.get("aria-label")) == ("img", "rising")
    assert len(by_class(root, "chart-series")) == 2


@pytest.mark.parametrize(
    "chart",
    [
        lambda: line_chart([], title="t"),
        lambda: line_chart([Series("s", [(START, None), (START, math.nan)])], title="t"),
        lambda: bar_chart([], title="t"),
        lambda: heatmap([], [], [], title="t"),
        lambda: lineage_graph([], [("a", "b")], title="t"),
        lambda: sparkline([None, math.inf], label="t"),
    ],
)
def test_no_data_says_so(chart: Callable[[], Markup]) -> None:
    assert any("no data" in text.lower() for text in texts(parse(chart())))


@pytest.mark.parametrize(
    ("span", "step", "label"),
    [
        (timedelta(days=1), timedelta(hours=6), "06:00"),
        (timedelta(days=7), timedelta(days=1), "4 Mar"),
        (timedelta(days=365), None, "Jan 2027"),
    ],
)
def test_time_ticks(span: timedelta, step: timedelta | None, label: str) -> None:
    ticks = time_ticks(START, START + span)
    assert 2 <= len(ticks) <= 8
    assert label in [text for _, text in ticks]
    assert all(START <= t <= START + span for t, _ in ticks)
    gaps = {b - a for (a, _), (b, _) in pairwise(ticks)}
    if step is not None:
        assert gaps == {step}
    else:  # months: on the first of a month, a month or more apart
        assert all(t.day == 1 and t.hour == 0 for t, _ in ticks)
        assert min(gaps) >= timedelta(days=28)


def test_time_ticks_edges() -> None:
    assert time_ticks(START + timedelta(days=1), START) == time_ticks(
        START, START + timedelta(days=1)
    )
    assert len(time_ticks(START, START)) == 1
    assert len(time_ticks(START, START + timedelta(days=3650), max_ticks=3)) <= 3


NUMBER_ATTRS = ("x", "y", "x1", "x2", "y1", "y2", "cx", "cy", "r", "width", "height", "points", "d")
values = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True))


@settings(max_examples=40, deadline=None)
@given(
    data=st.lists(st.lists(values, max_size=30), max_size=3),
    band=st.lists(st.tuples(values, values), max_size=30),
    threshold=values,
)
def test_any_numbers_give_valid_svg(
    data: list[list[float | None]],
    band: list[tuple[float | None, float | None]],
    threshold: float | None,
) -> None:
    series = [
        Series(f"s{i}", [(START + timedelta(hours=j), v) for j, v in enumerate(vs)], band=band)
        for i, vs in enumerate(data)
    ]
    charts = [
        line_chart(series, title="t", threshold=threshold),
        sparkline(data[0] if data else [], label="t"),
        heatmap(["a", "b"], hours(30), data[:2], title="t"),
        bar_chart(
            [(str(i), v) for i, v in enumerate(data[0] if data else []) if v is not None], title="t"
        ),
    ]
    for chart in charts:
        for el in parse(chart).iter():
            for name in NUMBER_ATTRS:
                for number in re.split(r"[\s,MHVLCZhvlcz%]+", el.get(name, "")):
                    assert not number or math.isfinite(float(number)), (name, number)


def test_the_pareto_front_is_what_nothing_beats() -> None:
    points = [(3.0, 0.9), (1.0, 0.9), (0.5, 0.8), (2.0, 0.95), (0.5, 0.7), (1.5, 0.85)]
    assert pareto_front(points, higher_is_better=True) == [2, 1, 3]  # cheapest first
    losses = [(1.0, 0.3), (2.0, 0.2), (3.0, 0.25)]
    assert pareto_front(losses, higher_is_better=False) == [0, 1]
    assert pareto_front([(1.0, math.nan), (math.inf, 1.0)], higher_is_better=True) == []


@settings(max_examples=200, deadline=None)
@given(
    points=st.lists(
        st.tuples(st.floats(0, 10, allow_nan=False), st.floats(0, 1, allow_nan=False)),
        min_size=1,
        max_size=12,
    ),
    higher=st.booleans(),
)
def test_no_point_beats_one_on_the_front_and_one_beats_every_other(
    points: list[tuple[float, float]], higher: bool
) -> None:
    sign = 1 if higher else -1

    def beats(a: tuple[float, float], b: tuple[float, float]) -> bool:
        no_worse = a[0] <= b[0] and sign * a[1] >= sign * b[1]
        return no_worse and (a[0] < b[0] or sign * a[1] > sign * b[1])

    front = pareto_front(points, higher_is_better=higher)
    assert front
    for i in front:
        assert not any(beats(p, points[i]) for p in points)
    for i in set(range(len(points))) - set(front):
        assert any(beats(points[j], points[i]) or points[j] == points[i] for j in front)


def test_the_pareto_chart_names_the_front_in_words() -> None:
    root = parse(
        pareto_chart(
            [("original", 2e-4, 0.91), ("compiled", 5e-5, 0.91), ("pruned", 4e-5, 0.88)],
            title="risk@1",
            x_unit="cost per 1,000",
            y_unit="roc_auc",
            higher_is_better=True,
        )
    )
    desc = root.find(f"{SVG}desc")
    assert desc is not None
    assert desc.text is not None
    assert desc.text.endswith("not beaten by another: pruned, compiled.")
    points = root.findall(f"./{SVG}g/{SVG}circle")  # the legend's is not in a group
    assert len(points) == 3
    assert [p.get("fill") for p in points].count("#E69F00") == 2  # the front's colour
