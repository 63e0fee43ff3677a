"""Model output is untrusted: whatever Markdown or HTML it contains, the rendered HTML holds no script,
no event handler attribute and no script-capable URL. Checked by parsing the output, not by grepping it."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qtap_site.chat.rendering import render_markdown

# The audit's own lists, on purpose not the renderer's allowlist: a tag or attribute added to that list
# must still fail here when it can run script, load a resource, submit, embed or restyle the page.
FORBIDDEN_TAGS = {
    # script and its containers
    "script", "noscript", "template", "style", "link", "meta", "base", "head", "html", "body", "title",
    # other documents and plugins
    "iframe", "frame", "frameset", "object", "embed", "applet", "portal", "param",
    # resources loaded from a URL (a remote image tells its host who reads the reply, and when)
    "img", "image", "picture", "source", "video", "audio", "track", "input", "svg", "math", "canvas",
    # forms and interactive widgets that act on the page
    "form", "button", "select", "option", "textarea", "label", "fieldset", "output", "dialog", "details",
    "marquee", "xmp", "plaintext", "noembed", "listing", "isindex", "keygen", "slot",
}  # fmt: skip
# Attributes that run script, load a URL, change where a form goes or name a DOM node (clobbering the
# page's own ids, such as #prompt or #messages).
FORBIDDEN_ATTRIBUTES = {
    "srcdoc", "src", "srcset", "action", "formaction", "form", "data", "codebase", "dynsrc", "lowsrc",
    "background", "poster", "ping", "xmlns", "xlink:href", "id", "name", "http-equiv", "autofocus", "target",
}  # fmt: skip
SAFE_SCHEMES = ("http:", "https:", "mailto:")
URL_ATTRIBUTES = {"href", "src", "action", "formaction", "xlink:href", "background", "poster", "data"}

CORPUS = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    "<img src=x onerror=alert(1)>",
    "<svg onload=alert(1)><circle r=10 /></svg>",
    "<iframe src=javascript:alert(1)></iframe>",
    '<a href="javascript:alert(1)">click</a>',
    '<a href="jAvAsCrIpT:alert(1)">click</a>',
    '<a href="java\tscript:alert(1)">tab</a>',
    '<a href="&#106;avascript:alert(1)">entity</a>',
    '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">data</a>',
    "[click](javascript:alert(1))",
    "[click](JAVASCRIPT:alert(1))",
    "[click](javascript&#58;alert(1))",
    "[click]( javascript:alert(1) )",
    "[click](vbscript:msgbox(1))",
    "[click](data:text/html,<script>alert(1)</script>)",
    "[ref][x]\n\n[x]: javascript:alert(1)",
    "![img](javascript:alert(1))",
    "![img](https://tracker.example/pixel.png)",
    "<https://ok.example> and <javascript:alert(1)>",
    '<div style="background:url(javascript:alert(1))">styled</div>',
    "<p onclick=alert(1)>para</p>",
    "<details open ontoggle=alert(1)>x</details>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "<form action=javascript:alert(1)><button>go</button></form>",
    "<object data=javascript:alert(1)></object>",
    "<embed src=javascript:alert(1)>",
    "<base href=javascript:alert(1)//>",
    '<meta http-equiv=refresh content="0;url=javascript:alert(1)">',
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
    "<!--<img src=x onerror=alert(1)>-->",
    "```html\n<script>alert(1)</script>\n```",
    "`<img src=x onerror=alert(1)>`",
    "| a | b |\n|---|---|\n| <script>alert(1)</script> | <img src=x onerror=alert(1)> |",
    "> <a href=javascript:alert(1)>quote</a>",
    "* [x](javascript:alert(1))\n* <b onmouseover=alert(1)>b</b>",
    "<scr<script>ipt>alert(1)</scr</script>ipt>",
    '"><script>alert(1)</script>',
    "'; alert(1); //",
    '<a href="https://ok.example" onclick="alert(1)">mixed</a>',
    "<style>body{background:url(javascript:alert(1))}</style>",
    "<template><script>alert(1)</script></template>",
    "<x-custom onpointerenter=alert(1)>custom</x-custom>",
    '<a id="prompt" name="messages" href="https://ok.example">clobber</a>',
    '<a href="https://ok.example" target="_top" ping="https://tracker.example">away</a>',
    '<iframe srcdoc="<script>alert(1)</script>" src="https://ok.example"></iframe>',
    "<video poster=https://tracker.example/p.png><source src=https://tracker.example/v.mp4></video>",
]


class Audit(HTMLParser):
    """Every tag, attribute and URL of a fragment, as a browser would tokenise it."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag in FORBIDDEN_TAGS or "-" in tag or ":" in tag:  # custom elements and namespaced tags too
            self.problems.append(f"tag <{tag}>")
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"event handler {name} on <{tag}>")
            if name in FORBIDDEN_ATTRIBUTES:
                self.problems.append(f"attribute {name} on <{tag}>")
            if name == "style" and value and ("url(" in value.lower() or "expression" in value.lower()):
                self.problems.append(f"style with a URL on <{tag}>: {value!r}")
            if name in URL_ATTRIBUTES and value is not None:
                url = "".join(value.split()).lower()  # browsers ignore whitespace inside the scheme
                if ":" in url.split("/", 1)[0] and not url.startswith(SAFE_SCHEMES):
                    self.problems.append(f"{name}={value!r} on <{tag}>")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)


def audit(source: str) -> list[str]:
    parser = Audit()
    parser.feed(render_markdown(source))
    parser.close()
    return parser.problems


@pytest.mark.parametrize("source", CORPUS)
def test_the_corpus_renders_inert(source: str) -> None:
    assert audit(source) == []


def test_the_audit_catches_what_it_looks_for() -> None:
    """The control: the same audit on unsanitised HTML finds every kind of problem."""
    parser = Audit()
    parser.feed('<script></script><a href="java script:x" onclick="y">a</a><img src="data:x">')
    assert parser.problems == [
        "tag <script>",
        "href='java script:x' on <a>",
        "event handler onclick on <a>",
        "tag <img>",
        "attribute src on <img>",
        "src='data:x' on <img>",
    ]
    # What a plain https URL cannot make safe: a tracking image, a frame, a custom element, a DOM id.
    parser = Audit()
    parser.feed(
        '<img src="https://tracker.example/p.png"><iframe src="https://ok.example"></iframe>'
        '<x-widget>w</x-widget><p id="prompt">p</p><td style="background:url(https://x.example)">t</td>'
    )
    assert parser.problems == [
        "tag <img>",
        "attribute src on <img>",
        "tag <iframe>",
        "attribute src on <iframe>",
        "tag <x-widget>",
        "attribute id on <p>",
        "style with a URL on <td>: 'background:url(https://x.example)'",
    ]


def test_safe_markdown_survives() -> None:
    html = render_markdown("**bold** [site](https://ok.example) `code`\n\n```python\nprint(1)\n```")
    assert "<strong>bold</strong>" in html
    assert 'href="https://ok.example"' in html
    assert '<code class="language-python">' in html


_PIECES = st.sampled_from(
    [
        "<", ">", "/", "=", '"', "'", "`", "&", "#", ";", ":", "(", ")", "[", "]", "!", "*", "_", "\n", " ", "\t",
        "script", "img", "a", "svg", "iframe", "style", "on", "onerror", "onload", "href", "src", "javascript",
        "JaVaScRiPt", "data", "vbscript", "alert(1)", "&#106;", "&#x6a;", "&colon;", "<!--", "-->", "```", "|",
        "http://x", "\x00", "\u2028",
    ]
)  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(_PIECES, st.text(max_size=5)), max_size=40).map("".join))
def test_any_mix_of_markup_renders_inert(source: str) -> None:
    assert audit(source) == []
