"""Sphinx configuration of fastseq's API reference, generated from the docstrings
(autodoc + numpydoc). Build: sphinx-build -W -b html docs/api build/api (the installed
fastseq is documented)."""
project = "fastseq"
author = "fastseq contributors"
extensions = ["sphinx.ext.autodoc", "numpydoc"]
autodoc_default_options = {"members": True, "undoc-members": False}
autodoc_typehints = "none"          # numpydoc's Parameters sections say the types
numpydoc_show_class_members = False
numpydoc_xref_param_type = False
exclude_patterns = ["_build"]
html_theme = "alabaster"
