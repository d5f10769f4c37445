"""``python -m ktrace_decode.formats``: print the message catalogue as a Markdown table."""

from .messages import catalogue_markdown

print(catalogue_markdown())
