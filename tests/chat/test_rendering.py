from qtap_site.chat.rendering import render_markdown


def test_markdown_is_rendered_and_code_blocks_kept():
    html = render_markdown("# Title\n\n**bold** and `x < y`\n\n```python\nif a < b:\n    pass\n```")
    assert "<h1>Title</h1>" in html and "<strong>bold</strong>" in html
    assert "<code>x &lt; y</code>" in html
    # Highlighted by Pygments (its token classes), behind a header naming the language.
    assert '<div class="code-head"><span class="code-lang">python</span></div>' in html
    assert '<pre><code class="language-python"><span class="k">if</span> <span class="n">a</span>' in html
    assert '<span class="o">&lt;</span>' in html and "</code></pre></div>" in html


def test_only_our_classes_survive():
    html = render_markdown('```python" onclick="x\nprint(1)\n```\n\n```nosuchlang\nx\n```')
    assert "onclick" not in html and "nosuchlang" not in html and 'class=""' not in html


def test_raw_html_is_never_passed_through():
    html = render_markdown('<script>alert(1)</script>\n\n<img src=x onerror="alert(1)">\n\n<b onclick="x()">hi</b>')
    # Only escaped text remains: no tag, no attribute a browser would act on.
    assert "<script" not in html and "<img" not in html and "<b " not in html
    assert "&lt;script&gt;" in html and '&lt;b onclick="x()"&gt;' in html


def test_dangerous_links_are_removed_safe_ones_kept():
    html = render_markdown(
        "[a](javascript:alert(1)) [b](JAVASCRIPT:alert(1)) [c](data:text/html,x) [d](https://ok.example/)"
    )
    assert 'href="javascript' not in html.lower() and 'href="data' not in html
    assert 'href="https://ok.example/"' in html and 'rel="noopener noreferrer nofollow"' in html


def test_images_in_model_output_are_dropped():
    assert "<img" not in render_markdown("![pixel](https://tracker.example/p.png)")


def test_empty():
    assert render_markdown("") == ""
