"""Text the model card quotes from users (dataset.yaml, the contract, column and group names, run config)
is made inert before it enters the card, so nothing a data owner writes can pass for the factory's own
words.

- Markdown: every character with a meaning (emphasis, links, headings, code, tables, quotes, lists)
  is backslash-escaped; line breaks become spaces, so a value can never start a new line, a heading
  or a fake table row ("| all fairness gates | PASS |" stays one line of text in its own cell).
- HTML: `<`, `>` and `&` become entities, so `<script>` or `<img onerror=...>` is shown, not parsed.
- Control, bidi and invisible characters (RLO U+202E, zero-width joiners, BOM, C0/C1 controls) are
  replaced with a visible `(U+XXXX)`, so the text reads in the order it is stored.
- A value starting with a spreadsheet formula prefix (= + - @, or a tab or CR) gets a leading `'`,
  so `=HYPERLINK(...)` pasted into a spreadsheet stays text (OWASP CSV injection).
"""

from __future__ import annotations

import re
import unicodedata

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_MARKDOWN = set("\\`*_{}[]()#+-.!|~<>&")  # every character CommonMark/GFM gives a meaning to (HTML below)
_HTML = {"<": "&lt;", ">": "&gt;", "&": "&amp;"}
_BIDI_AND_INVISIBLE = {0x061C, 0x200B, 0x200C, 0x200D, 0x200E, 0x200F, 0x2060, 0xFEFF,
                       *range(0x202A, 0x202F), *range(0x2066, 0x206A)}
_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029\u0085\v\f]+")


def _visible(ch: str) -> str:
    """A control, bidi or invisible character as visible text; any other character unchanged."""
    cp = ord(ch)
    if cp in _BIDI_AND_INVISIBLE or unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cs"):
        return f"(U+{cp:04X})"
    return ch


def _defuse_formula(s: str) -> str:
    return "'" + s if s.lstrip(" ").startswith(FORMULA_PREFIXES) else s


def _one_line(value: object) -> str:
    return _defuse_formula(_LINE_BREAKS.sub(" ", str(value)))


def _plain(value: object) -> str:
    """One line, formula-defused, with controls made visible (for code spans)."""
    return "".join(_visible(ch) for ch in _one_line(value))


def text(value: object) -> str:
    """VALUE as inert Markdown for prose, list items and table cells."""
    out = []
    for ch in _one_line(value):
        shown = _visible(ch)
        if shown != ch:  # the marker is the factory's own text, already inert: not escaped again
            out.append(shown)
        elif ch in _HTML:
            out.append(_HTML[ch])
        elif ch in _MARKDOWN:
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def code(value: object) -> str:
    """VALUE as an inline code span that nothing in it can close; `|` escaped for GFM tables."""
    s = _plain(value).replace("|", "\\|")
    longest = max((len(m) for m in re.findall(r"`+", s)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if s.startswith("`") or s.endswith("`") or not s.strip() else ""
    return f"{fence}{pad}{s}{pad}{fence}"


def inert_tree(obj):
    """OBJ (a report: dicts, lists, numbers, text) with every text key and value made inert by `text`."""
    if isinstance(obj, dict):
        return {(text(k) if isinstance(k, str) else k): inert_tree(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [inert_tree(v) for v in obj]
    if isinstance(obj, str):
        return text(obj)
    return obj
