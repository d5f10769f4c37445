"""Hypothesis strategies for texts shaped like the catalogue's messages
(test_bytematch.py, test_fused.py)."""

from __future__ import annotations

from hypothesis import strategies as st

from ktrace_decode.formats import messages as M


def _value(conv: str) -> st.SearchStrategy[str]:
    digits = st.text("0123456789", min_size=0, max_size=24)
    return {
        "d": st.tuples(st.sampled_from(["", "-", "--"]), digits).map("".join),
        "i": st.tuples(st.sampled_from(["", "-"]), digits).map("".join),
        "u": digits,
        "x": st.text("0123456789abcdefABx", max_size=20),
        "X": st.text("0123456789ABCDEFabx", max_size=20),
        "p": st.one_of(st.text("0123456789abcdefx(", max_size=16),
                       st.sampled_from(["(null)", "(ptrval)", "(nul", "(ptrval"])),
        # Made of the bytes of the literals after a %s, so the lazy split
        # has near misses to get wrong.
        "s": st.text(max_size=12) | st.text(", err=5 toCS1;", max_size=14),
    }[conv]


@st.composite
def catalogue_text(draw: st.DrawFn) -> str:
    """A text built from a catalogue message's cut, every value drawn at
    random (valid or not), sometimes cut short or given a stray character."""
    msg = draw(st.sampled_from(M.CATALOGUE))
    out = [draw(st.sampled_from([msg.function, msg.function + "x", "fuse_open"])), ": "]
    for literal, conv in M.segments(msg):
        out.append(literal)
        if conv is not None:
            out.append(draw(_value(conv)))
    text = "".join(out)
    edit = draw(st.sampled_from(["none", "none", "cut", "insert"]))
    if edit != "none" and text:
        at = draw(st.integers(0, len(text)))
        extra = draw(st.text(max_size=2)) if edit == "insert" else ""
        text = text[:at] + extra + (text[at:] if edit == "insert" else "")
    return text
