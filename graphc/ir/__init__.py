"""The IR: dtypes, shapes, values and graphs, the op table, the builder, the reference
interpreter, the verifier, and the text, JSON and DOT forms."""
