"""The console's register and report pages (``/console/agencies``, ``/console/agencies/{code}``,
``/console/report``, ``/console/report.csv``), in-process over HTTP against the real application, signed in
through the real sign-in form, on both databases.

What is set up goes through the API as an operator would (agencies, certificates, tokens, VXP systems,
submitted documents); what is checked is the HTML a browser gets, read with lxml, and the CSV a
spreadsheet gets.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone

import httpx
import lxml.html
import pytest
from fastapi import FastAPI
from lxml.html import HtmlElement

from certs import make_keypair
from console_support import console_sign_in
from gateway.webconsole.register_pages import certificate_state
from gateway.webconsole.report_pages import COLUMNS, current_month
from gw import register, submit

A, B, C = "000.00.01.H41", "000.00.02.H41", "000.00.03.H41"
NAME_A = "Sở Thông tin và Truyền thông tỉnh Thừa Thiên Huế"
NAME_B = "UBND huyện Đắk Glei"
NAME_C = 'Sở <b>Kế hoạch</b> & "Đầu tư"'


def token_of(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


@pytest.fixture
async def console(app: FastAPI, client: httpx.AsyncClient, auditor_headers: dict[str, str]
                  ) -> AsyncIterator[httpx.AsyncClient]:
    """A browser signed in to the console as an auditor (the pages are read-only: an auditor sees them all)."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as browser:
        await console_sign_in(browser, token_of(auditor_headers))
        yield browser


def page(response: httpx.Response) -> HtmlElement:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    return lxml.html.fromstring(response.text)


def text(element: HtmlElement) -> str:
    return " ".join(element.text_content().split())


def one(root: HtmlElement, xpath: str) -> HtmlElement:
    found = root.xpath(xpath)
    assert len(found) == 1, (xpath, len(found))
    element: HtmlElement = found[0]
    return element


# -- the register ------------------------------------------------------------------------------------------------

async def test_register_lists_every_agency_registered_through_the_api(
    client: httpx.AsyncClient, admin_headers: dict[str, str], console: httpx.AsyncClient
) -> None:
    await register(client, admin_headers, A, NAME_A)
    await register(client, admin_headers, B, NAME_B,
                   delivery={"mode": "push", "endpoint": "https://qlvb.example.gov.vn/edxml/inbox"})
    await register(client, admin_headers, C, NAME_C)
    r = await client.patch(f"/v1/agencies/{C}", json={"active": False}, headers=admin_headers)
    assert r.status_code == 200, r.text

    root = page(await console.get("/console/agencies"))
    rows = {row.get("data-agency"): row for row in root.xpath("//table[@id='agencies']/tbody/tr[@data-agency]")}
    assert list(rows) == [A, B, C]
    assert text(one(rows[A], "td[@class='name']")) == NAME_A
    assert text(one(rows[B], "td[@class='name']")) == NAME_B
    assert text(one(rows[C], "td[@class='name']")) == NAME_C  # shown as text, not as markup
    assert rows[C].xpath(".//b") == []
    assert [one(rows[code], "td[@class='delivery']").get("data-mode") for code in (A, B, C)] == ["pull", "push",
                                                                                                "pull"]
    assert [one(rows[code], "td[@class='active']").get("data-active") for code in (A, B, C)] == ["true", "true",
                                                                                                "false"]
    assert {one(rows[code], "td[@class='source']").get("data-source") for code in (A, B, C)} == {"local"}
    assert one(rows[A], ".//a").get("href") == f"/console/agencies/{A}"


async def test_agency_page_shows_its_entry_aliases_and_vxp_systems(
    client: httpx.AsyncClient, admin_headers: dict[str, str], console: httpx.AsyncClient
) -> None:
    await register(client, admin_headers, A, NAME_A, aliases=["28.22.H17", "TTH-STTTT"])
    r = await client.post("/v1/agencies", headers=admin_headers, json={
        "code": B, "name": NAME_B, "parent_code": A, "delivery": {"mode": "pull"}})
    assert r.status_code == 201, r.text
    await register(client, admin_headers, C, NAME_C)
    systems = {}
    for agency, serves in ((A, "subtree"), (B, "agency"), (C, "subtree")):
        r = await client.post("/v1/vxp/systems", json={"agency": agency, "serves": serves}, headers=admin_headers)
        assert r.status_code == 201, r.text
        systems[agency] = r.json()["system_id"]
    assert (await client.delete(f"/v1/vxp/systems/{systems[B]}", headers=admin_headers)).status_code == 204

    root = page(await console.get(f"/console/agencies/{A}"))
    assert text(one(root, "//h1")) == NAME_A
    assert [li.get("data-alias") for li in root.xpath("//ul[@id='aliases']/li")] == ["28.22.H17", "TTH-STTTT"]
    assert [tr.get("data-system") for tr in root.xpath("//table[@id='vxp-systems']/tbody/tr")] == [systems[A]]
    # B is served by its own system (revoked, still on record) and by its parent's, which serves A's subtree;
    # never by C's
    child = page(await console.get(f"/console/agencies/{B}"))
    rows = {tr.get("data-system"): tr for tr in child.xpath("//table[@id='vxp-systems']/tbody/tr")}
    assert set(rows) == {systems[A], systems[B]}
    assert rows[systems[B]].get("class") == "revoked"
    assert rows[systems[A]].get("class") == "active"
    assert one(rows[systems[A]], ".//a").get("href") == f"/console/agencies/{A}"
    assert one(child, "//table[@id='agency']//a").get("href") == f"/console/agencies/{A}"  # the parent
    assert [li.get("class") for li in child.xpath("//ul[@id='aliases']/li")] == ["empty"]
    # the page is read-only, for auditors and admins alike: its one form is signing out
    assert [f.get("id") for f in child.xpath("//form")] == ["logout-form"]


async def test_certificate_expiring_within_30_days_is_marked_and_one_in_60_days_is_not(
    client: httpx.AsyncClient, admin_headers: dict[str, str], console: httpx.AsyncClient
) -> None:
    agency = await register(client, admin_headers, A, NAME_A)  # its first certificate: valid for a year
    now = datetime.now(UTC)
    soon = make_keypair("Văn thư Sở TT&TT", not_after=now + timedelta(days=10))
    later = make_keypair("Văn thư Sở TT&TT", not_after=now + timedelta(days=60))
    revoked = make_keypair("Văn thư cũ", not_after=now + timedelta(days=5))
    for kp in (soon, later, revoked):
        r = await client.post(f"/v1/agencies/{A}/certificates", json={"pem": kp.cert_pem}, headers=admin_headers)
        assert r.status_code == 201, r.text
    r = await client.delete(f"/v1/agencies/{A}/certificates/{revoked.sha256}", headers=admin_headers)
    assert r.status_code == 200, r.text

    root = page(await console.get(f"/console/agencies/{A}"))
    rows = {tr.get("data-certificate"): tr for tr in root.xpath("//table[@id='certificates']/tbody/tr")}
    assert set(rows) == {agency.keys.sha256, soon.sha256, later.sha256, revoked.sha256}
    assert rows[soon.sha256].get("class") == "expiring"
    assert rows[later.sha256].get("class") == "valid"
    assert rows[agency.keys.sha256].get("class") == "valid"
    assert rows[revoked.sha256].get("class") == "revoked"  # no longer in use: nothing to renew
    # subject, serial, fingerprint and validity in +07:00
    row = rows[soon.sha256]
    assert text(one(row, "td[@class='subject']")) == "CN=Văn thư Sở TT&TT"
    serial = f"{soon.cert.serial_number:X}"
    assert text(one(row, "td[@class='serial']")) == ("0" + serial if len(serial) % 2 else serial)
    assert text(one(row, "td[@class='fingerprint']")) == soon.sha256
    local = soon.cert.not_valid_after_utc.astimezone(timezone(timedelta(hours=7)))
    assert text(one(row, "td[@class='not-after']")) == local.strftime("%d/%m/%Y %H:%M:%S") + " (+07:00)"
    # the register's list flags the agency too
    listing = page(await console.get("/console/agencies"))
    assert one(listing, f"//tr[@data-agency='{A}']").get("class") == "expiring"


@pytest.mark.parametrize(("not_after", "revoked", "state"), [
    (timedelta(days=-1), False, "expired"),
    (timedelta(seconds=0), False, "expired"),
    (timedelta(days=10), False, "expiring"),
    (timedelta(days=30), False, "expiring"),
    (timedelta(days=30, seconds=1), False, "valid"),
    (timedelta(days=60), False, "valid"),
    (timedelta(days=10), True, "revoked"),
    (timedelta(days=-10), True, "revoked"),
])
def test_certificate_state_at_an_instant(not_after: timedelta, revoked: bool, state: str) -> None:
    now = datetime(2026, 11, 15, 3, 0, tzinfo=UTC)
    assert certificate_state(now - timedelta(days=300), now + not_after, now if revoked else None, now) == state


async def test_agency_page_lists_its_tokens_and_never_a_secret(
    client: httpx.AsyncClient, admin_headers: dict[str, str], console: httpx.AsyncClient
) -> None:
    agency = await register(client, admin_headers, A, NAME_A)
    await register(client, admin_headers, B, NAME_B)
    second = (await client.post(f"/v1/agencies/{A}/tokens", headers=admin_headers)).json()
    assert (await client.delete(f"/v1/agencies/{A}/tokens/{second['id']}", headers=admin_headers)).status_code == 204
    listed = (await client.get(f"/v1/agencies/{A}/tokens", headers=admin_headers)).json()["items"]
    first = next(t for t in listed if t["id"] != second["id"])

    response = await console.get(f"/console/agencies/{A}")
    root = page(response)
    rows = {tr.get("data-token"): tr for tr in root.xpath("//table[@id='tokens']/tbody/tr")}
    assert list(rows) == [first["id"], second["id"]]  # oldest first; B's token is not A's
    assert rows[first["id"]].get("data-state") == "active"
    assert rows[second["id"]].get("data-state") == "revoked"
    assert text(one(rows[first["id"]], "td[@class='expires']")) == "Không hết hạn"
    assert text(one(rows[first["id"]], "td[@class='revoked']")) == "—"
    assert text(one(rows[second["id"]], "td[@class='revoked']")).endswith("(+07:00)")
    assert agency.token not in response.text
    assert second["token"] not in response.text


async def test_unknown_agency_is_the_console_404_page(console: httpx.AsyncClient) -> None:
    r = await console.get("/console/agencies/999.99.99.H99")
    assert r.status_code == 404
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert one(lxml.html.fromstring(r.text), "//*[@id='error']").get("data-type") == "agency-not-found"


# -- the monthly report ------------------------------------------------------------------------------------------

async def _known_month(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> str:
    """A sends two documents (one to B, one to B and C), B one to A; B takes both of its own from its inbox.
    The figures of the month: A sent 2, both delivered to B (2 deliveries), 1 pending for C; B sent 1
    (pending), received 2; C nothing. All signed."""
    before = str(current_month())
    a = await register(client, admin_headers, A, NAME_A)
    b = await register(client, admin_headers, B, NAME_B)
    c = await register(client, admin_headers, C, NAME_C)
    for sender, to, number in ((a, (b,), 1), (a, (b, c), 2), (b, (a,), 3)):
        r = await submit(client, sender, sender.envelope(*to, code_number=str(number)))
        assert r.status_code == 201, r.text
    inbox = (await client.get("/v1/inbox", headers=b.headers)).json()["items"]
    assert len(inbox) == 2
    for item in inbox:
        assert (await client.get(f"/v1/inbox/{item['delivery_id']}", headers=b.headers)).status_code == 200
        r = await client.post(f"/v1/inbox/{item['delivery_id']}/ack", json={"result": "done"}, headers=b.headers)
        assert r.status_code == 200, r.text
    month = str(current_month())
    if month != before:
        pytest.skip("the scenario straddled the turn of a month in +07:00")
    return month


EXPECTED = {
    A: {"sent": "2", "received": "0", "delivered": "2", "dead": "0", "signed_xml": "2", "signed_xml_share": "100.0",
        "delivery_seconds_median": ""},
    B: {"sent": "1", "received": "2", "delivered": "0", "dead": "0", "signed_xml": "1", "signed_xml_share": "100.0"},
    C: {"sent": "0", "received": "0", "delivered": "0", "dead": "0", "signed_xml": "0", "signed_xml_share": ""},
    "totals": {"sent": "3", "received": "2", "delivered": "2", "dead": "0", "signed_xml": "3",
               "sent_local": "3", "sent_forwarded": "0"},
}


def figures_of(row: HtmlElement) -> dict[str, str]:
    return {td.get("data-figure"): text(td) for td in row.xpath("td[@data-figure]")}


async def test_report_shows_the_figures_of_the_documents_submitted(
    client: httpx.AsyncClient, admin_headers: dict[str, str], console: httpx.AsyncClient
) -> None:
    month = await _known_month(client, admin_headers)
    root = page(await console.get("/console/report", params={"month": month}))
    table = one(root, "//table[@id='report-table']")
    rows = {tr.get("data-agency"): tr for tr in table.xpath("tbody/tr[@data-agency]")}
    assert list(rows) == [A, B, C]
    assert text(one(rows[A], "th[@class='name']")) == NAME_A
    assert text(one(rows[C], "th[@class='name']")) == NAME_C
    for code in (A, B, C):
        got = figures_of(rows[code])
        assert {k: got[k] for k in EXPECTED[code]} == EXPECTED[code], code
    totals = figures_of(one(table, "tfoot/tr"))
    assert {k: totals[k] for k in EXPECTED["totals"]} == EXPECTED["totals"]
    # Vietnamese headings, one per figure
    headings = table.xpath("thead/tr/th")
    assert [text(th) for th in headings] == ["Mã định danh", "Tên cơ quan", *(c.short for c in COLUMNS)]
    assert [th.get("title") for th in headings[2:]] == [c.label for c in COLUMNS]
    assert headings[2].get("title") == "Văn bản gửi"

    # the chart: one group per agency with traffic, bars as tall as its figures, accessible, no markup leaked
    svg = one(root, "//svg[@id='report-chart']")
    assert svg.get("role") == "img"
    assert text(one(svg, "title")).startswith("Văn bản gửi, nhận")
    groups = {g.get("data-label"): g for g in svg.xpath(".//g[@class='group']")}
    assert set(groups) == {NAME_A, NAME_B}  # C had no traffic
    bars = {(label, rect.get("data-series")): (float(rect.get("data-value")), float(rect.get("height")))
            for label, g in groups.items() for rect in g.xpath("rect[@class='bar']")}
    assert bars[(NAME_A, "Gửi")][0] == 2
    assert bars[(NAME_B, "Nhận")][0] == 2
    assert bars[(NAME_B, "Gửi")][0] == 1
    assert bars[(NAME_B, "Gửi")][1] == pytest.approx(bars[(NAME_A, "Gửi")][1] / 2, abs=0.02)
    assert bars[(NAME_A, "Thất bại")][1] == 0
    assert "<b>Kế hoạch</b>" not in (await console.get("/console/report", params={"month": month})).text

    # navigation: the months either side, and this month by default
    assert one(root, "//a[@id='month-prev']").get("href").startswith("/console/report?month=")
    assert one(root, "//a[@id='month-next']").get("href").startswith("/console/report?month=")
    default = page(await console.get("/console/report"))
    assert one(default, "//table[@id='report-table']").get("data-month") == month
    assert figures_of(one(default, "//table[@id='report-table']/tfoot/tr")) == totals


async def test_report_csv_has_the_bom_and_the_same_figures(
    client: httpx.AsyncClient, admin_headers: dict[str, str], console: httpx.AsyncClient
) -> None:
    month = await _known_month(client, admin_headers)
    root = page(await console.get("/console/report", params={"month": month}))
    href = one(root, "//a[@id='report-csv']").get("href")
    page_rows = {tr.get("data-agency"): figures_of(tr)
                 for tr in root.xpath("//table[@id='report-table']/tbody/tr[@data-agency]")}

    r = await console.get(href)
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.headers["content-disposition"] == f'attachment; filename="bao-cao-thang-{month}.csv"'
    assert r.content.startswith(b"\xef\xbb\xbf")
    table = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"), newline="")))
    header, *body = table
    assert header[:3] == ["Tháng", "Mã định danh", "Tên cơ quan"]
    assert header[3:] == [c.label for c in COLUMNS]
    rows = {row[1]: dict(zip([c.field for c in COLUMNS], row[3:], strict=True)) for row in body}
    assert [row[0] for row in body] == [month] * 4
    assert [row[2] for row in body] == [NAME_A, NAME_B, NAME_C, "Tổng cộng"]  # Vietnamese intact
    for code in (A, B, C):
        assert rows[code] == page_rows[code], code
    assert {k: rows[""][k] for k in EXPECTED["totals"]} == EXPECTED["totals"]


async def test_report_csv_defuses_a_name_a_spreadsheet_would_run_as_a_formula(
    client: httpx.AsyncClient, admin_headers: dict[str, str], console: httpx.AsyncClient
) -> None:
    await register(client, admin_headers, A, '=HYPERLINK("http://evil.example","Sở Tài chính")')
    r = await console.get("/console/report.csv", params={"month": str(current_month())})
    body = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"), newline="")))[1:]
    assert body[0][2] == '\'=HYPERLINK("http://evil.example","Sở Tài chính")'


@pytest.mark.parametrize("month", ["2026-13", "26-11", "2026-1", "<script>alert(1)</script>", "1969-12", ""])
async def test_bad_month_is_a_4xx_page_that_does_not_echo_it(console: httpx.AsyncClient, month: str) -> None:
    for path in ("/console/report", "/console/report.csv"):
        r = await console.get(path, params={"month": month})
        assert r.status_code == 422, (path, r.text)
        assert r.headers["content-type"] == "text/html; charset=utf-8"
        assert one(lxml.html.fromstring(r.text), "//*[@id='error']").get("data-type") == "report-month-invalid"
        assert "<script>alert" not in r.text


async def test_a_month_without_documents_draws_an_empty_chart(
    client: httpx.AsyncClient, admin_headers: dict[str, str], console: httpx.AsyncClient
) -> None:
    await register(client, admin_headers, A, NAME_A)
    root = page(await console.get("/console/report", params={"month": "1970-01"}))
    assert one(root, "//svg[@id='report-chart']//text[@class='empty']") is not None
    assert root.xpath("//a[@id='month-prev']") == []  # the report's months start in 1970
    assert figures_of(one(root, f"//tr[@data-agency='{A}']"))["sent"] == "0"


# -- who may look ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/console/agencies", f"/console/agencies/{A}", "/console/report?month=2026-11",
                                  "/console/report.csv?month=2026-11"])
async def test_not_signed_in_is_sent_to_the_sign_in_form(client: httpx.AsyncClient, path: str) -> None:
    r = await client.get(path)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/console/login?next=/console/")


async def test_an_admin_sees_the_same_pages(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await register(client, admin_headers, A, NAME_A)
    await console_sign_in(client, token_of(admin_headers))
    for path in ("/console/agencies", f"/console/agencies/{A}", "/console/report"):
        assert NAME_A in (await client.get(path)).text, path
