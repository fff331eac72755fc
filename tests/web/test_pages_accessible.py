"""What the pages say to a person and to assistive technology, over real HTTP (no browser): titles that
name the page, the sign-in error pattern, links that say what they open, no empty header, no automatic
refresh, each chart's figures as a table, the accessibility statement, and the GOV.UK styles served
from the package under the same strict CSP (test_accessibility.py looks at the same pages in Chromium)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import httpx

from mash_broker.app.web.app import HERE
from web.conftest import WebStack
from web.test_pages import client, csrf_of, delivery_ids, sign_in

ALEX = "alex.keyadult@example.org"


class Page(HTMLParser):
    """The parts of a page these tests read: title, links with their text, header cells, meta tags."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.links: list[tuple[str, str]] = []
        self.headers: list[str] = []
        self.metas: list[dict[str, str]] = []
        self._open: list[str] = []
        self._text: list[str] = []
        self._href = ""
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "meta":
            self.metas.append({k: v or "" for k, v in attrs})
        if tag in ("title", "a", "th"):
            self._open.append(tag)
            self._text = []
            self._href = dict(attrs).get("href") or ""

    def handle_endtag(self, tag: str) -> None:
        if self._open and self._open[-1] == tag:
            self._open.pop()
            text = " ".join("".join(self._text).split())
            if tag == "title":
                self.title = text
            elif tag == "a":
                self.links.append((self._href, text))
            else:
                self.headers.append(text)

    def handle_data(self, data: str) -> None:
        if self._open:
            self._text.append(data)


def test_every_page_title_names_the_page(web_stack: WebStack) -> None:
    target = delivery_ids(web_stack, "900001")[-1]
    alex, morgan, anyone = sign_in(web_stack, ALEX), sign_in(web_stack, "morgan manager"), client(web_stack)
    titles = {
        "sign in": Page(anyone.get("/login").text).title,
        "statement": Page(anyone.get("/accessibility").text).title,
        "not found": Page(anyone.get("/nowhere").text).title,
        "inbox": Page(alex.get("/inbox").text).title,
        "notification": Page(alex.get(f"/inbox/{target}").text).title,
        "board": Page(morgan.get("/board").text).title,
    }
    assert titles == {
        "sign in": "Sign in · MASH Broker",
        "statement": "Accessibility statement · MASH Broker",
        "not found": "Not found · MASH Broker",
        "inbox": "Inbox: Example Primary School · MASH Broker",
        "notification": titles["notification"],
        "board": "MASH board · MASH Broker",
    }
    assert re.fullmatch(r"Notification EXP/2026/\d{4} · MASH Broker", titles["notification"])


def test_a_failed_sign_in_says_error_keeps_the_email_and_marks_the_field(web_stack: WebStack) -> None:
    c = client(web_stack)
    typed = 'someone@example.org"<b>'
    r = c.post("/login", data={"login": typed, "password": "wrong", "csrf": csrf_of(c.get("/login").text)})
    assert r.status_code == 401
    page = Page(r.text)
    assert page.title == "Error: Sign in · MASH Broker"
    assert ("#login", "That email (or user name) and password do not match an account that may sign in.") in page.links
    assert 'class="govuk-error-summary"' in r.text
    assert re.search(r'<div class="govuk-error-summary"\s+id="error" tabindex="-1" autofocus', r.text)
    field = re.search(r"<input[^>]*\bid=\"login\"[^>]*>", r.text)
    assert field, r.text
    assert 'value="someone@example.org&#34;&lt;b&gt;"' in field.group(0)  # kept, and escaped
    assert 'aria-describedby="login-error"' in field.group(0)
    assert 'aria-invalid="true"' in field.group(0)
    assert 'id="login-error"' in r.text
    password = re.search(r"<input[^>]*\bid=\"password\"[^>]*>", r.text)
    assert password
    assert "value=" not in password.group(0)


def test_inbox_links_say_what_they_open_and_no_header_is_empty(web_stack: WebStack) -> None:
    html = sign_in(web_stack, ALEX).get("/inbox").text
    page = Page(html)
    opens = [text for href, text in page.links if href.startswith("/inbox/")]
    assert len(opens) == len(delivery_ids(web_stack, "900001")) >= 3
    assert all(re.fullmatch(r"(Open|View) notification EXP/2026/\d{4}", t) for t in opens), opens
    assert page.headers
    assert all(page.headers)
    assert not any(name in " ".join(opens) for name in ("Ava", "Lily", "Esme", "Test", "Fixture"))


def test_the_board_never_refreshes_itself_and_says_when_its_figures_are_from(web_stack: WebStack) -> None:
    html = sign_in(web_stack, "morgan manager").get("/board").text
    page = Page(html)
    assert not [m for m in page.metas if m.get("http-equiv", "").lower() == "refresh"]
    assert "Figures at Mon 23 Nov 07:00" in html
    assert ("/board", "refresh the figures") in page.links
    assert all(page.headers)


def test_each_chart_is_hidden_from_assistive_technology_and_its_figures_are_a_table(web_stack: WebStack) -> None:
    html = sign_in(web_stack, "morgan manager").get("/board").text
    svgs = re.findall(r"<svg[^>]*>", html)
    assert len(svgs) == 3
    assert all('aria-hidden="true"' in s and "role=" not in s for s in svgs)
    for i in (1, 2, 3):
        table = html.split(f'id="chart-{i}-figures"', 1)[1].split("</table>", 1)[0]
        assert "the figures per week" in table
        rows = re.findall(r"<tr [^>]*>(.*?)</tr>", table.split("<tbody", 1)[1], re.S)
        assert len(rows) == 8  # one a week, as the bars
    first = html.split('id="chart-1-figures"', 1)[1].split("</table>", 1)[0]
    assert re.search(r"\d+ of \d+", first)


def test_the_accessibility_statement_needs_no_sign_in_and_every_page_links_to_it(web_stack: WebStack) -> None:
    anyone = client(web_stack)
    r = anyone.get("/accessibility")
    assert r.status_code == 200
    for heading in (
        "How accessible this website is",
        "Feedback and contact information",
        "Reporting accessibility problems with this website",
        "Enforcement procedure",
        "Technical information about this website's accessibility",
        "Compliance status",
        "Non-accessible content",
        "Preparation of this accessibility statement",
    ):
        assert f">{heading}</h" in r.text.replace("\n", " "), heading
    status = r.text.split('id="compliance-status">', 1)[1].split("</p>", 1)[0]
    assert "partially compliant" in " ".join(status.split())
    assert "[email address]" in r.text  # for the organisation that runs it to fill in
    assert "30 minutes" in r.text  # the session time limit, from the settings, owned up to
    alex = sign_in(web_stack, ALEX)
    for html in (
        anyone.get("/login").text,
        anyone.get("/nowhere").text,
        r.text,
        alex.get("/inbox").text,
        alex.get(f"/inbox/{delivery_ids(web_stack, '900001')[0]}").text,
        sign_in(web_stack, "morgan manager").get("/board").text,
    ):
        assert ("/accessibility", "Accessibility statement") in Page(html).links


def test_the_govuk_styles_come_from_the_package_under_the_same_csp(web_stack: WebStack) -> None:
    c = client(web_stack)
    html = c.get("/login").text
    sheets = re.findall(r'<link rel="stylesheet" href="([^"]+)">', html)
    assert sheets == ["/static/govuk/govuk-frontend.min.css", "/static/style.css"]
    css = c.get(sheets[0])
    assert css.status_code == 200
    assert css.headers["content-security-policy"].startswith("default-src 'none'; style-src 'self'")
    assert '--govuk-frontend-version:"6.6.0"' in css.text
    assert "@font-face" not in css.text  # the GOV.UK typeface is not shipped
    assert "<script" not in html
    vendored = sorted(p.name for p in (HERE / "static" / "govuk").iterdir())
    assert vendored == ["LICENSE", "VERSION", "govuk-frontend.min.css"]  # no crown, crest or typeface
    assert httpx.get(web_stack.web.url + "/static/govuk/LICENSE").text.startswith("The MIT License")


def test_templates_stay_strict_about_a_missing_value_but_let_an_option_be_left_out() -> None:
    from zoneinfo import ZoneInfo

    import jinja2
    import pytest

    from mash_broker.app.web.templating import environment

    env = environment(ZoneInfo("Europe/London"))
    for typo in ("{{ missing }}", "{% for x in missing %}{% endfor %}", "{{ missing|length }}", "{{ d.nope }}"):
        with pytest.raises(jinja2.UndefinedError):
            env.from_string(typo).render(d={})
    assert env.from_string("{% if d.classes %}x{% endif %}{{ d.nope == 1 }}").render(d={}) == "False"
