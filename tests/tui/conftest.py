"""Textual animations (tab underline, scrolling) make snapshots timing-dependent on a
loaded machine; the tests assert end states, so switch them off."""

import os

os.environ["TEXTUAL_ANIMATIONS"] = "none"
