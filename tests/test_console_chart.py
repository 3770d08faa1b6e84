"""The report's chart (``gateway.webconsole.chart``): a pure function from figures to an SVG string, read back
here as XML, so that what a browser draws (bar heights, labels, the viewBox) is what is checked."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from gateway.webconsole.chart import HEIGHT, WIDTH, grouped_bar_chart, nice_ceiling

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # noqa: S314 -- our own output, parsed to check it is well-formed


def bars(root: ET.Element) -> list[ET.Element]:
    return [e for e in root.iter(f"{SVG}rect") if e.get("class") == "bar"]


def inside_viewbox(root: ET.Element) -> None:
    """Every rectangle and every text anchor inside the viewBox, which is at most WIDTH x HEIGHT."""
    left, top, width, height = (float(v) for v in root.get("viewBox", "").split())
    assert (left, top, width) == (0, 0, WIDTH)
    assert 0 < height <= HEIGHT
    for rect in root.iter(f"{SVG}rect"):
        x, y = float(rect.get("x", "0")), float(rect.get("y", "0"))
        w, h = float(rect.get("width", "0")), float(rect.get("height", "0"))
        assert 0 <= x <= x + w <= width + 0.01, rect.attrib
        assert 0 <= y <= y + h <= height + 0.01, rect.attrib
    for text in root.iter(f"{SVG}text"):
        assert 0 <= float(text.get("x", "0")) <= width, text.attrib
        assert 0 <= float(text.get("y", "0")) <= height, text.attrib


def test_bar_heights_are_proportional_to_the_values() -> None:
    root = parse(grouped_bar_chart(
        [("Sở Nội vụ", {"Gửi": 10, "Nhận": 5}), ("Sở Y tế", {"Gửi": 2, "Nhận": 0})], title="Tháng 11/2026"))
    got = {(b.get("data-series"), float(b.get("data-value", "-1"))): float(b.get("height", "-1"))
           for b in bars(root)}
    assert len(got) == 4
    unit = got[("Gửi", 10.0)] / 10
    assert unit > 0
    assert got[("Nhận", 5.0)] == pytest.approx(5 * unit, abs=0.02)
    assert got[("Gửi", 2.0)] == pytest.approx(2 * unit, abs=0.02)
    assert got[("Nhận", 0.0)] == 0
    # every bar of a group stands on the same baseline
    baselines = {round(float(b.get("y", "0")) + float(b.get("height", "0")), 1) for b in bars(root)}
    assert len(baselines) == 1
    inside_viewbox(root)


def test_the_largest_bar_reaches_a_round_top_of_the_axis() -> None:
    assert [nice_ceiling(v) for v in (0, 1, 3, 7, 10, 11, 240, 260, 999)] == [1, 1, 5, 10, 10, 20, 250, 500, 1000]


def test_series_keep_their_order_and_a_missing_one_counts_zero() -> None:
    root = parse(grouped_bar_chart([("A", {"Nhận": 3}), ("B", {"Gửi": 1, "Nhận": 2})],
                                   title="t", series=["Gửi", "Nhận"]))
    assert [(b.get("data-series"), b.get("data-value")) for b in bars(root)] == [
        ("Gửi", "0"), ("Nhận", "3"), ("Gửi", "1"), ("Nhận", "2")]
    legend = [t.text for g in root.iter(f"{SVG}g") if g.get("class") == "legend" for t in g.iter(f"{SVG}text")]
    assert legend == ["Gửi", "Nhận"]


def test_all_zero_figures_draw_flat_bars_on_an_axis_from_zero_to_one() -> None:
    root = parse(grouped_bar_chart([("A", {"Gửi": 0, "Nhận": 0})], title="t"))
    assert [float(b.get("height", "-1")) for b in bars(root)] == [0, 0]
    axis = [t.text for g in root.iter(f"{SVG}g") if g.get("class") == "axis y-axis" for t in g.iter(f"{SVG}text")]
    assert axis[0] == "0"
    assert axis[-1] == "1"
    inside_viewbox(root)


def test_no_group_at_all_says_there_is_nothing_to_show() -> None:
    root = parse(grouped_bar_chart([], title="t", series=["Gửi"], empty_text="Không có số liệu"))
    assert bars(root) == []
    assert [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "empty"] == ["Không có số liệu"]


def test_a_single_agency_fills_the_plot_and_stays_inside_it() -> None:
    root = parse(grouped_bar_chart([("UBND tỉnh Nghệ An", {"Gửi": 4, "Nhận": 1, "Thất bại": 0})], title="t"))
    got = bars(root)
    assert [b.get("data-series") for b in got] == ["Gửi", "Nhận", "Thất bại"]
    assert float(got[0].get("width", "0")) > 200  # one group spreads over the whole width
    inside_viewbox(root)


def test_labels_titles_and_series_are_escaped() -> None:
    hostile = 'Sở <script>alert(1)</script> & "Tài chính"'
    svg = grouped_bar_chart([(hostile, {'Gửi <b>&"': 1})], title='Báo cáo <&">', description="<desc>",
                            element_id="report-chart")
    assert "<script>" not in svg
    assert "<b>" not in svg
    assert "<desc>" not in svg
    root = parse(svg)  # well-formed: nothing broke out of its element or attribute
    assert root.get("id") == "report-chart"
    assert root.find(f"{SVG}title") is not None
    assert root.find(f"{SVG}title").text == 'Báo cáo <&">'  # type: ignore[union-attr]  # found just above
    group = next(g for g in root.iter(f"{SVG}g") if g.get("class") == "group")
    assert group.get("data-label") == hostile
    assert group.find(f"{SVG}title").text == hostile  # type: ignore[union-attr]  # every group has one
    assert bars(root)[0].get("data-series") == 'Gửi <b>&"'


def test_a_long_label_is_shortened_on_the_axis_and_kept_whole_in_its_title() -> None:
    name = "Trung tâm Công nghệ thông tin và Truyền thông tỉnh Thừa Thiên Huế"
    root = parse(grouped_bar_chart([(name, {"Gửi": 1})], title="t"))
    label = next(t for t in root.iter(f"{SVG}text") if t.get("class") == "label")
    assert label.text is not None
    assert label.text.endswith("…")
    assert len(label.text) < len(name)
    group = next(g for g in root.iter(f"{SVG}g") if g.get("class") == "group")
    assert group.find(f"{SVG}title").text == name  # type: ignore[union-attr]  # every group has one


@pytest.mark.parametrize("huge", [10**15, 1e300, 1.7e308])
def test_a_huge_value_keeps_every_shape_inside_the_viewbox(huge: float) -> None:
    root = parse(grouped_bar_chart([("A", {"Gửi": huge, "Nhận": 1}), ("B", {"Gửi": 0, "Nhận": huge / 2})],
                                   title="t"))
    inside_viewbox(root)
    heights = [float(b.get("height", "0")) for b in bars(root)]
    assert max(heights) > 0
    axis = [t.text or "" for g in root.iter(f"{SVG}g") if g.get("class") == "axis y-axis"
            for t in g.iter(f"{SVG}text")]
    assert all(len(text) <= 12 for text in axis), axis  # a number that fits left of the axis


def test_many_agencies_still_fit_with_their_labels_slanted() -> None:
    groups = [(f"Cơ quan {i}", {"Gửi": float(i), "Nhận": 1.0}) for i in range(120)]
    root = parse(grouped_bar_chart(groups, title="t"))
    inside_viewbox(root)
    assert root.get("viewBox") == f"0 0 {WIDTH} {HEIGHT}"  # the full height: room for slanted labels
    labels = [t for t in root.iter(f"{SVG}text") if t.get("class") == "label"]
    assert len(labels) == 120
    assert all(t.get("transform", "").startswith("rotate(-35 ") for t in labels)


def test_a_few_agencies_have_level_labels_and_a_shorter_chart() -> None:
    root = parse(grouped_bar_chart([("Sở Y tế", {"Gửi": 1}), ("Sở Nội vụ", {"Gửi": 2})], title="t"))
    labels = [t for t in root.iter(f"{SVG}text") if t.get("class") == "label"]
    assert [(t.text, t.get("transform"), t.get("text-anchor")) for t in labels] == [
        ("Sở Y tế", None, "middle"), ("Sở Nội vụ", None, "middle")]
    assert float(root.get("viewBox", "").split()[3]) < HEIGHT
    inside_viewbox(root)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_a_negative_or_non_finite_value_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="finite and non-negative"):
        grouped_bar_chart([("A", {"Gửi": bad})], title="t")


def test_the_chart_needs_no_inline_style_or_script() -> None:
    """The console's CSP (``default-src 'self'``) would refuse both."""
    svg = grouped_bar_chart([("A", {"Gửi": 1, "Nhận": 2})], title="t")
    assert "style" not in svg
    assert "<script" not in svg
    assert "href" not in svg
