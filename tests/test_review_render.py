"""What the review page and the editor do to text: LaTeX to MathML, and the edit buffer round trip."""

import pytest

from chimera.cli.review.edit_buffer import edit_buffer, parse_edit_buffer
from chimera.cli.safe_text import math_html


def test_inline_and_display_latex_become_mathml_and_the_rest_is_escaped():
    rendered = math_html(r"If $x^2 = 4$ and <b>y</b>: $$\frac{1}{2}$$ or \(a\) and \[b\]")
    assert rendered.count("<math") == 4
    assert rendered.count('display="block"') == 2
    assert "&lt;b&gt;y&lt;/b&gt;" in rendered and "$" not in rendered


def test_a_lone_dollar_amount_stays_text():
    assert math_html("It costs $5 per unit.") == "It costs $5 per unit."


def test_latex_the_converter_cannot_read_stays_visible():
    assert math_html(r"Broken $\frac{1}{$ here") == r"Broken <code>$\frac{1}{$</code> here"


def test_the_edit_buffer_round_trips_and_ignores_comment_lines():
    buffer = edit_buffer("Compute 3 + 4.\nShow work.", "7")
    assert parse_edit_buffer(buffer) == ("Compute 3 + 4.\nShow work.", "7")
    changed = buffer.replace("\n7\n", "\n# a comment\n8\n")
    assert parse_edit_buffer(changed) == ("Compute 3 + 4.\nShow work.", "8")


def test_an_edit_buffer_without_its_markers_is_refused():
    with pytest.raises(ValueError, match="must keep the lines"):
        parse_edit_buffer("just text")


def test_math_from_model_text_keeps_only_allowlisted_mathml():
    from chimera.cli.safe_text import math_html

    html_out = math_html("$\\href{javascript:alert(1)}{x}$ $\\style{position:fixed}{y}$ $\\text{<script>z</script>}$")
    for banned in ("href", "style=", "javascript", "<script", "class=", "id="):
        assert banned not in html_out, banned
    assert "&lt;script&gt;" in html_out, "the tag is shown as text"


def test_rendering_is_bounded_and_control_characters_are_visible():
    from chimera.cli.safe_text import MAX_FIELD_CHARS, math_html, math_spans, visible

    huge = "$x$ " * (MAX_FIELD_CHARS // 4 + 1)
    assert "<math" not in math_html(huge), "a field past the cap is shown as escaped text"
    unclosed = "\\(" * 50_000 + "$a " * 50_000
    assert "".join(piece for piece, _, _ in math_spans(unclosed)) == unclosed
    assert visible("a\u202eb\x1b[2Jc") == "a⟨U+202E⟩b⟨U+001B⟩[2Jc"
