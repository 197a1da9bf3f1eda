"""ANSI colours in output become spans; everything else is escaped (web/ansi.py)."""

from __future__ import annotations

from jobyard.web.ansi import to_html


def test_colours_become_classes() -> None:
    html = to_html("plain \x1b[31mred\x1b[0m \x1b[1;92mbold green\x1b[39m bold\x1b[m end")
    assert html == (
        'plain <span class="ansi-fg1">red</span> '
        '<span class="ansi-fg10 ansi-bold">bold green</span>'
        '<span class="ansi-bold"> bold</span> end'
    )


def test_markup_in_output_is_escaped() -> None:
    html = to_html('\x1b[33m<script>alert("x")</script>\x1b[0m & <b>')
    assert "<script>" not in html and "<b>" not in html
    assert html == (
        '<span class="ansi-fg3">&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;</span>'
        " &amp; &lt;b&gt;"
    )


def test_other_sequences_are_dropped() -> None:
    text = "a\x1b[2Kb\x1b]0;title\x07c\x1b[38;5;196md\x1b[38;2;1;2;3me\x1b[48;5;4mf"
    assert to_html(text) == 'abcde<span class="ansi-bg4">f</span>'
